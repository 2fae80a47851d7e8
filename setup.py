# setuptools needs a setup.py to accept cffi's `cffi_modules` keyword; all metadata is in
# pyproject.toml and the C build itself is declared in build.py.
from setuptools import setup

setup(cffi_modules=["build.py:ffibuilder", "build.py:hvt_ffibuilder"])
