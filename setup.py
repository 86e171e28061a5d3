"""Builds the optional native instruction counter; the simulator falls back to
Python (same results, slower) where no C compiler is present."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("hwut.sim._native", ["sim/native/counter.c", "sim/native/mmio.c",
                                                    "sim/native/rampskip.c", "sim/native/tim.c",
                                                    "sim/native/adc.c"], optional=True,
                             depends=["sim/native/layout.h", "sim/native/mmio.h"],
                             extra_compile_args=["-O2"])])
