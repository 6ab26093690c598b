"""Build the optional C lock-step TFTP pump; everything else is in pyproject.toml.

optional=True: without a compiler the install still succeeds and pxetui serves lock-step
transfers from Python (pxetui/tftp/pump.py tells which one runs).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pxetui.tftp._pump", ["pxetui/tftp/_pump.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
