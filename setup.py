"""Build script for gristmill's Cython extensions.

Metadata lives in pyproject.toml; this file only declares the compiled modules so that
``pip install -e .`` (and a wheel build) compiles them on a fresh machine.
"""

import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _extensions():
    exts = []
    for pyx in sorted(glob.glob(os.path.join("*", "*.pyx"))):
        package, fname = os.path.split(pyx)
        if package not in {"kernels", "envs", "samplers", "learners"}:
            continue
        name = f"gristmill.{package}.{os.path.splitext(fname)[0]}"
        exts.append(
            Extension(
                name,
                [pyx],
                include_dirs=[np.get_include(), package],
                extra_compile_args=["-O3", "-std=c11"],
                libraries=["rt", "pthread"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return exts


setup(
    ext_modules=cythonize(
        _extensions(),
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
