"""Build nncore's one extension module, nncore._core: the C core of src_c/ plus the Cython
wrappers. Portable flags only (-O3, never -march=native or -ffast-math): the SIMD kernels carry
their own target attributes and are chosen at run time. OpenMP is probed by compiling a small
program; without it the build still succeeds, single-threaded, unless NNCORE_REQUIRE_OPENMP=1
(release wheels) makes that an error. NNCORE_NO_OPENMP=1 forces it off; NNCORE_SANITIZE=1
builds with AddressSanitizer and UndefinedBehaviorSanitizer.

OpenMP per compiler: GCC and clang -fopenmp; MSVC /openmp (OpenMP 2.0, so the C code uses
nothing newer); Apple clang -Xpreprocessor -fopenmp -lomp with libomp's headers and library
from NNCORE_LIBOMP_PREFIX, `brew --prefix libomp`, or Homebrew's usual places."""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_TEST = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
}
"""


def _env_flag(name):
    return os.environ.get(name, "") not in ("", "0")


def _libomp_prefixes():
    """Where libomp (include/omp.h, lib/libomp.dylib) may be on macOS, most specific first."""
    prefixes = []
    if os.environ.get("NNCORE_LIBOMP_PREFIX"):
        prefixes.append(os.environ["NNCORE_LIBOMP_PREFIX"])
    if shutil.which("brew"):
        try:
            out = subprocess.run(["brew", "--prefix", "libomp"], capture_output=True, text=True,
                                 timeout=60)
            if out.returncode == 0 and out.stdout.strip():
                prefixes.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    prefixes += ["/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    return [p for p in dict.fromkeys(prefixes) if os.path.exists(os.path.join(p, "include",
                                                                            "omp.h"))]


def _openmp_flags(compiler):
    """(compile_args, link_args) that build and run an OpenMP program, or None."""
    if _env_flag("NNCORE_NO_OPENMP"):
        return None
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        # Apple clang has OpenMP in its front end but ships no runtime and no omp.h.
        candidates = [(["-Xpreprocessor", "-fopenmp", f"-I{p}/include"],
                       [f"-L{p}/lib", "-lomp", f"-Wl,-rpath,{p}/lib"])
                      for p in _libomp_prefixes()]
        candidates += [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        tmp = tempfile.mkdtemp()
        try:
            src = os.path.join(tmp, "omp_test.c")
            with open(src, "w") as f:
                f.write(OPENMP_TEST)
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            exe = os.path.join(tmp, "omp_test")
            compiler.link_executable(objs, exe, extra_postargs=lflags)
            if compiler.compiler_type == "msvc" or subprocess.call([exe]) == 0:
                return cflags, lflags
        except Exception:
            pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return None


def _compiler_version(compiler):
    if compiler.compiler_type == "msvc":
        return "msvc"
    cc = compiler.compiler[0] if getattr(compiler, "compiler", None) else "cc"
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0].strip()
    except Exception:
        return cc


class BuildExt(build_ext):
    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        # -fno-trapping-math changes no value (FP exceptions are never trapped here): it lets
        # the compiler turn selects such as "|x| < tiny ? 0 : x" into vector blends, without
        # which the optimizer and activation loops are not vectorised on SSE2/AVX2.
        cflags = (["/O2", "/fp:precise"] if msvc else
                  ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"])
        lflags = []
        if not msvc and _env_flag("NNCORE_SANITIZE"):
            cflags = ["-O1", "-g", "-fno-omit-frame-pointer", "-ffp-contract=off",
                      "-fsanitize=address,undefined"]
            lflags = ["-fsanitize=address,undefined"]
        omp = _openmp_flags(self.compiler)
        if omp is None and _env_flag("NNCORE_REQUIRE_OPENMP"):
            sys.exit("nncore: NNCORE_REQUIRE_OPENMP is set but the compiler cannot build and run "
                     "an OpenMP program (on macOS: brew install libomp, or set "
                     "NNCORE_LIBOMP_PREFIX)")
        if omp is None:
            print("nncore: OpenMP not available (or NNCORE_NO_OPENMP set); building single-threaded")
        else:
            cflags += omp[0]
            lflags += omp[1]
        for ext in self.extensions:
            ext.extra_compile_args = cflags + ext.extra_compile_args
            ext.extra_link_args = lflags + ext.extra_link_args
        self._write_config(cflags, lflags, omp is not None)
        super().build_extensions()

    def run(self):
        super().run()
        if not self.inplace:
            # Also place the built module in the source tree, so that `import nncore` works
            # from the checkout itself (where the source package shadows the installed one).
            try:
                self.copy_extensions_to_source()
            except OSError as e:
                print(f"nncore: could not copy the extension into the source tree ({e})")

    def _write_config(self, cflags, lflags, openmp):
        text = (
            '"""Written by setup.py at build time: how this copy of nncore was compiled."""\n'
            f"compiler = {_compiler_version(self.compiler)!r}\n"
            f"compile_args = {' '.join(cflags)!r}\n"
            f"link_args = {' '.join(lflags)!r}\n"
            f"openmp = {openmp!r}\n"
            f"platform = {sysconfig.get_platform()!r}\n"
        )
        # Into the build tree (for the wheel) and the source tree (for in-place builds).
        for d in {"nncore", os.path.join(self.build_lib, "nncore")}:
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "_build_config.py"), "w") as f:
                f.write(text)


ext = Extension(
    "nncore._core",
    sources=["nncore/_core.pyx"] + sorted(glob.glob("src_c/**/*.c", recursive=True)),
    include_dirs=["src_c", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    depends=glob.glob("src_c/**/*.h", recursive=True) + ["nncore/_core.pxd"],
)

setup(
    ext_modules=cythonize(
        [ext],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "cdivision": True},
    ),
    cmdclass={"build_ext": BuildExt},
)
