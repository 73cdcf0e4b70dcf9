"""nncore: dense neural networks on the CPU, fast.

A compiled C core (packed SIMD GEMM chosen at run time, fused dense layers, losses and
optimizers, OpenMP) under a small Python API.
"""

from ._version import __version__
from . import _core

_core.init_cpu()  # honours NNCORE_CPU; a clear error if it names a path this CPU lacks

from ._config import config, show_config  # noqa: E402
from ._core import (  # noqa: E402
    available_cpu_paths,
    get_cpu_path,
    get_num_threads,
    set_cpu_path,
    set_num_threads,
)

__all__ = [
    "__version__", "show_config", "config", "available_cpu_paths", "get_cpu_path",
    "set_cpu_path", "get_num_threads", "set_num_threads",
]
