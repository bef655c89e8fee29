# bufferscope — set-up, run and test on a fresh Debian 12 machine (as root).
#
#   make run    install what is missing, then open the app
#   make test   install what is missing, then run the whole test suite under Xvfb
#
# Each step leaves a stamp file so nothing already done is done twice.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamps

# Debian packages the Qt xcb platform plugin, Mesa (llvmpipe) and Xvfb need.
DEB_PACKAGES := xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 \
	libxkbcommon0 libxkbcommon-x11-0 libxcb1 libxcb-cursor0 libxcb-icccm4 \
	libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 \
	libxcb-xinerama0 libxcb-randr0 libxcb-xkb1 libxcb-xfixes0 libxcb-sync1 \
	libxcb-shm0 libxcb-render0 libxcb-glx0 libfontconfig1 libfreetype6 \
	libdbus-1-3 libglib2.0-0 fonts-dejavu-core

.PHONY: run test deps ci lint bench soak clean
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
		c_backend/build_ffi.py c_backend/src/bufferscope.c c_backend/src/bufferscope.h
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@mkdir -p $(STAMP) && touch $@

clean:
	rm -rf $(VENV) build *.egg-info c_backend/_bufferscope_c*.so c_backend/_bufferscope_c.c c_backend/_bufferscope_c.o tests/_build
