"""Build: compile the Cython kernels in kernels/ into argus.kernels, and generate the protobuf/gRPC
modules from protos/ into argus/v1, at build time (neither output is committed).

Cython resolves `cimport argus.kernels.x` through package directories, so the sources in kernels/ are
staged under build/cysrc/argus/kernels/ (a plain copy, refreshed when a source changes) and compiled
from there. Set ARGUS_CYTHON_CHECKS=1 to turn bounds and wraparound checks back on for debugging.
"""

import glob
import os
import shutil

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
STAGE = os.path.join("build", "cysrc")


def generate_protos() -> None:
    """Run protoc (grpcio-tools) over protos/argus/v1/*.proto into argus/v1/."""
    from grpc_tools import protoc

    protos = sorted(glob.glob(os.path.join("protos", "argus", "v1", "*.proto")))
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for proto in protos:
        args = ["protoc", "-Iprotos", f"-I{include}", "--python_out=.", "--pyi_out=.", "--grpc_python_out=.", proto]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {proto}")


#: Kernel sources shipped inside the package: argus.options.gpu compiles this header with NVRTC at run time.
PACKAGE_KERNEL_SOURCES = ["heston_qe_kernel.h"]


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        generate_protos()
        super().run()
        dest = os.path.join(self.build_lib, "argus", "kernels")
        os.makedirs(dest, exist_ok=True)
        for name in PACKAGE_KERNEL_SOURCES:
            self.copy_file(os.path.join("kernels", name), os.path.join(dest, name))


def stage_kernels() -> list[str]:
    """Copy kernels/* into build/cysrc/argus/kernels and return the staged .pyx paths."""
    dest = os.path.join(STAGE, "argus", "kernels")
    os.makedirs(dest, exist_ok=True)
    for pkg in (os.path.join(STAGE, "argus"), dest):
        open(os.path.join(pkg, "__init__.py"), "a").close()
    for src in sorted(glob.glob(os.path.join("kernels", "*"))):
        if src.endswith((".pyx", ".pxd", ".h", ".c")) and not src.endswith("_cy.c"):
            target = os.path.join(dest, os.path.basename(src))
            if not os.path.exists(target) or os.path.getmtime(target) < os.path.getmtime(src):
                shutil.copy2(src, target)
    return sorted(glob.glob(os.path.join(dest, "*.pyx")))


#: Extensions whose loops run on several cores (OpenMP over independent Monte Carlo path chunks).
OPENMP = {"heston_mc": ["-fopenmp"]}
#: Extra compile flags. heston_mc: no contraction into FMA (the AVX2/AVX-512 clones of its path loops and
#: the CUDA build, compiled with --fmad=false, then give the same bits), and no errno / trap semantics for
#: sqrt and the selects, so its lockstep lanes vectorise (results are unchanged by these two).
CFLAGS = {"heston_mc": ["-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]}

os.chdir(ROOT)
checks = os.environ.get("ARGUS_CYTHON_CHECKS") == "1"
generate_protos()
extensions = [
    Extension(
        "argus.kernels." + os.path.splitext(os.path.basename(pyx))[0],
        [pyx],
        include_dirs=[numpy.get_include(), os.path.join(STAGE, "argus", "kernels")],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", *OPENMP.get(os.path.splitext(os.path.basename(pyx))[0], []),
                            *CFLAGS.get(os.path.splitext(os.path.basename(pyx))[0], [])],
        extra_link_args=OPENMP.get(os.path.splitext(os.path.basename(pyx))[0], []),
    )
    for pyx in stage_kernels()
]

setup(
    packages=["argus", "argus.v1", "argus.kernels", "argus.events", "argus.log", "argus.connectors", "argus.analytics", "argus.projections", "argus.options", "argus.api", "argus.client", "argus.cli", "argus.research", "argus.replay", "argus.strategies", "argus.sizing"],
    package_dir={"argus.cli": "cli"},
    package_data={"argus.v1": ["*.pyi"], "argus.research": ["templates/*.j2", "templates/*.yaml"]},
    ext_modules=cythonize(
        extensions,
        include_path=[STAGE],
        language_level="3",
        compiler_directives={
            "boundscheck": checks,
            "wraparound": checks,
            "initializedcheck": checks,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
    cmdclass={"build_py": BuildPyWithProtos},
)
