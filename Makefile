# bufferscope — set-up, run and test on a fresh Debian 12 machine (as root).
#
#   make run    install what is missing, then open the app
#   make test   install what is missing, then run the whole test suite under Xvfb
#   make libbufferscope   the C library alone, for C and C++ programs (see examples/)
#
# Each step leaves a stamp file so nothing already done is done twice.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamps
# The C library's sources (bufferscope.c #includes trace_writer.c, payload_pool.c
# and live_publisher.c, which #includes live_proto.c, live_session.c and live_update.c).
LIB_SOURCES := c_backend/src/bufferscope.c c_backend/src/trace_writer.c c_backend/src/payload_pool.c \
	c_backend/src/live_publisher.c c_backend/src/live_proto.c c_backend/src/live_session.c \
	c_backend/src/live_update.c c_backend/src/bufferscope.h

# Debian packages the Qt xcb platform plugin, Mesa (llvmpipe) and Xvfb need, and
# clang with its sanitizer/libFuzzer runtimes for the C library's fuzzer.
DEB_PACKAGES := xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 \
	libxkbcommon0 libxkbcommon-x11-0 libxcb1 libxcb-cursor0 libxcb-icccm4 \
	libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 \
	libxcb-xinerama0 libxcb-randr0 libxcb-xkb1 libxcb-xfixes0 libxcb-sync1 \
	libxcb-shm0 libxcb-render0 libxcb-glx0 libfontconfig1 libfreetype6 \
	libdbus-1-3 libglib2.0-0 fonts-dejavu-core pkg-config \
	clang libclang-rt-14-dev

.PHONY: run test deps ci lint bench soak clean libbufferscope fuzz fuzz-live
run: $(STAMP)/install
	$(PY) -m app gui $(ARGS)

test: $(STAMP)/install
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) -m gl_backend.glinfo || true
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)/install
	$(VENV)/bin/ruff check app c_backend gl_backend ui tests benchmarks
	$(VENV)/bin/lint-imports

bench: $(STAMP)/install
	$(PY) -m app bench $(ARGS)

# The real app for 10 minutes (scenarios, C <-> GL switches, shapes, exports, zoom):
# exits non-zero when its memory or thread count grew or something hung (issue 12).
soak: $(STAMP)/install
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) benchmarks/soak.py --seconds 600 $(ARGS)

deps: $(STAMP)/deb

# A long libFuzzer run over the C API (fuzz/fuzz_c_api.c; the test suite runs a
# 20 s one). New inputs go to build/fuzz/corpus, crashes to build/fuzz/.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)/deb
	@mkdir -p build/fuzz/corpus
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-Ic_backend/src fuzz/fuzz_c_api.c c_backend/src/bufferscope.c -lpthread \
		-o build/fuzz/fuzz_c_api
	build/fuzz/fuzz_c_api -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=512 \
		-len_control=0 -rss_limit_mb=2048 -artifact_prefix=build/fuzz/ \
		build/fuzz/corpus fuzz/corpus

# The live-attach publisher's JSON reader (what a viewer sends) under libFuzzer.
fuzz-live: $(STAMP)/deb
	@mkdir -p build/fuzz/live-corpus
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-Ic_backend/src fuzz/fuzz_live_proto.c -o build/fuzz/fuzz_live_proto
	build/fuzz/fuzz_live_proto -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=4096 \
		-rss_limit_mb=2048 -artifact_prefix=build/fuzz/ build/fuzz/live-corpus

# Debian packages: only those not yet installed, `apt-get update` only when needed.
$(STAMP)/deb:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@mkdir -p $(STAMP) && touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The package itself (editable, so the cffi extension is compiled in place) with
# its test and tooling extras. Rebuilt when the packaging or the C sources change.
$(STAMP)/install: $(STAMP)/deb $(VENV)/bin/python pyproject.toml setup.py \
		c_backend/build_ffi.py $(LIB_SOURCES)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@mkdir -p $(STAMP) && touch $@

# The C library alone (SPEC §3): a shared library exporting only bs_*, its header
# and a pkg-config file whose prefix is this build folder (absolute), with an
# rpath, so `PKG_CONFIG_PATH=build/lib/pkgconfig cc prog.c $$(pkg-config --cflags
# --libs bufferscope)` builds a program that runs as it is.
LIB_BUILD   := $(abspath build)
LIB_SONAME  := libbufferscope.so.1
LIB_CC      ?= gcc
LIB_CFLAGS  := -std=c11 -O2 -fPIC -pthread -fvisibility=hidden -ffp-contract=off -Wall -Wextra

libbufferscope: build/lib/libbufferscope.so build/include/bufferscope.h build/lib/pkgconfig/bufferscope.pc

build/lib/$(LIB_SONAME): $(LIB_SOURCES)
	@mkdir -p $(@D)
	$(LIB_CC) $(LIB_CFLAGS) -shared -Wl,-soname,$(LIB_SONAME) -o $@ c_backend/src/bufferscope.c

build/lib/libbufferscope.so: build/lib/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $@

build/include/bufferscope.h: c_backend/src/bufferscope.h
	@mkdir -p $(@D)
	cp $< $@

build/lib/pkgconfig/bufferscope.pc: Makefile
	@mkdir -p $(@D)
	printf '%s\n' 'prefix=$(LIB_BUILD)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: bufferscope' 'Description: double-buffered buffer manager with ordering instrumentation' \
	  'Version: 1.0.0' 'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -Wl,-rpath,$${libdir} -lbufferscope' 'Libs.private: -pthread' > $@

clean:
	rm -rf $(VENV) build *.egg-info c_backend/_bufferscope_c*.so c_backend/_bufferscope_c.c c_backend/_bufferscope_c.o tests/_build
