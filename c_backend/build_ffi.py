"""cffi (API mode) build script for the C backend: compiles ``src/bufferscope.c``
into the extension module ``c_backend._bufferscope_c``.

The cdef is read from the real header, so sizes, struct layouts and enum values
are never duplicated by hand. Run directly (``python c_backend/build_ffi.py``) to
build in place; ``pip install`` runs it through ``setup.py``'s ``cffi_modules``.
"""

from __future__ import annotations

import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE / "src"


def header_cdef() -> str:
    """The header's declarations, less comments, preprocessor lines and the C++ guard."""
    text = re.sub(r"/\*.*?\*/", "", (SRC / "bufferscope.h").read_text(), flags=re.S)
    kept = [
        line
        for line in text.splitlines()
        if not line.lstrip().startswith("#") and line.strip() not in ('extern "C" {', "}")
    ]
    body = "\n".join(kept).replace("[BS_MAX_NDIM]", "[3]")
    return ("#define BS_ABI_VERSION ...\n#define BS_MAX_NDIM ...\n"
            "#define BS_DEFAULT_PAYLOAD_BUDGET ...\n" + body)


ffibuilder = FFI()
ffibuilder.cdef(header_cdef())
ffibuilder.set_source(
    "c_backend._bufferscope_c",
    '#include "bufferscope.h"',
    sources=[str((SRC / "bufferscope.c").relative_to(HERE.parent))],
    # bufferscope.c #includes trace_writer.c, payload_pool.c and live_publisher.c
    # (which #includes live_proto.c, live_session.c and live_update.c): one
    # translation unit, rebuilt on any of them.
    depends=[str((SRC / name).relative_to(HERE.parent))
             for name in ("trace_writer.c", "payload_pool.c", "live_publisher.c", "live_proto.c",
                          "live_session.c", "live_update.c")],
    include_dirs=[str(SRC.relative_to(HERE.parent))],
    extra_compile_args=["-std=c11", "-O2", "-ffp-contract=off", "-Wall", "-Wextra"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    import os

    os.chdir(HERE.parent)
    ffibuilder.compile(verbose=True)
