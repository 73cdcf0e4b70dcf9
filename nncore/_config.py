"""Build and run-time configuration: nncore.show_config()."""

import platform
import sys

from . import _core
from ._version import __version__


def config():
    """The build and run-time configuration as a dict."""
    try:
        from . import _build_config as b
        build = {"compiler": b.compiler, "compile_args": b.compile_args,
                 "link_args": b.link_args}
    except ImportError:  # built without setup.py's build_ext (should not happen)
        build = {"compiler": "unknown", "compile_args": "unknown", "link_args": "unknown"}
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        **build,
        "openmp": _core.openmp_enabled(),
        "num_threads": _core.get_num_threads(),
        "cpu_paths_compiled": _core.compiled_cpu_paths(),
        "cpu_paths_available": _core.available_cpu_paths(),
        "cpu_path": _core.get_cpu_path(),
        "bf16_kernel": _core.bf16_kernel(),
        "bf16_kernels_available": _core.available_bf16_kernels(),
    }


_BF16_TEXT = {"amx": "AMX tiles (TDPBF16PS)", "avx512_bf16": "VDPBF16PS (AVX512_BF16)",
              "emulated": "emulated with float32 multiply-adds of the rounded operands, "
                          "slower"}


def show_config(file=None):
    """Print the version, the compiler and its flags, OpenMP, the default thread count, the
    CPU paths compiled in and the one selected."""
    c = config()
    lines = [
        f"nncore {c['version']} (Python {c['python']}, {c['machine']})",
        f"  compiler:         {c['compiler']}",
        f"  compile flags:    {c['compile_args']}",
        f"  link flags:       {c['link_args']}",
        f"  OpenMP:           {'yes' if c['openmp'] else 'no (single-threaded build)'}",
        f"  threads:          {c['num_threads']} (nncore.set_num_threads, OMP_NUM_THREADS)",
        f"  CPU paths built:  {', '.join(c['cpu_paths_compiled'])}",
        f"  CPU paths usable: {', '.join(c['cpu_paths_available'])}",
        f"  CPU path in use:  {c['cpu_path']} (NNCORE_CPU=generic|avx2|avx512 forces one)",
        (f"  bfloat16:         {_BF16_TEXT[c['bf16_kernel']]} (usable: "
         f"{', '.join(c['bf16_kernels_available'])}; NNCORE_CPU=avx512_amx|avx512_bf16 "
         f"forces one)"),
    ]
    print("\n".join(lines), file=file)
