"""The C library from C alone: tests/c/test_bufferscope.c (several producer and
synchronizer threads, every bad argument, pause/timeout/full/fault, close while
waiting, 200 create/destroy cycles), built and run under AddressSanitizer +
UndefinedBehaviorSanitizer (leaks included), again with 8-byte set offsets and
again under ThreadSanitizer."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "c_backend" / "src"
TEST_C = ROOT / "tests" / "c" / "test_bufferscope.c"
CC = os.environ.get("CC", "gcc")

SANITIZERS = {
    "asan-ubsan": (["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                    "-fno-sanitize-recover=all"],
                   {"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0",
                    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}),
    "tsan": (["-fsanitize=thread"], {"TSAN_OPTIONS": "halt_on_error=1:second_deadlock_stack=1"}),
}
# The library keeps set chunks' flat offsets in 4 bytes for buffers of at most
# 2^32 elements and in 8 bytes beyond: this build takes the 8-byte path on the
# test's small buffers, so both widths are checked.
SANITIZERS["asan-ubsan-8-byte-offsets"] = (SANITIZERS["asan-ubsan"][0] + ["-DBS_OFF32_MAX=0"],
                                           SANITIZERS["asan-ubsan"][1])


def _build(tmp_path, flags, name):
    if shutil.which(CC) is None:
        pytest.fail(f"no C compiler {CC!r}: the C library cannot be tested")
    exe = tmp_path / name
    cmd = [CC, "-std=c11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", *flags, f"-I{SRC}",
           str(TEST_C), str(SRC / "bufferscope.c"), "-lpthread", "-lm", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"build failed:\n{r.stderr}"
    return exe


@pytest.mark.parametrize("sanitizer", list(SANITIZERS))
def test_c_library_under_sanitizer(tmp_path, sanitizer):
    flags, env = SANITIZERS[sanitizer]
    exe = _build(tmp_path, flags, f"test_bufferscope_{sanitizer}")
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **env})
    report = r.stdout + r.stderr
    assert r.returncode == 0, f"{sanitizer} run failed (exit {r.returncode}):\n{report[-6000:]}"
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer", "CHECK FAILED"):
        assert marker not in report, report[-6000:]
    assert "all C checks passed" in r.stdout


def test_header_compiles_in_a_cpp_consumer(tmp_path):
    """The header is the stable ABI: it must be usable from C++ too."""
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "use.cpp"
    src.write_text('#include "bufferscope.h"\n'
                   "int main() { return bs_abi_version() == BS_ABI_VERSION ? 0 : 1; }\n")
    r = subprocess.run(["g++", "-Wall", "-Werror", f"-I{SRC}", "-c", str(src), "-o", str(tmp_path / "use.o")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
