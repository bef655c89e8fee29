# cffi cannot yet be declared in pyproject.toml alone: this hook builds the C
# backend's extension (API mode) when the package is installed.
from setuptools import setup

setup(cffi_modules=["c_backend/build_ffi.py:ffibuilder"])
