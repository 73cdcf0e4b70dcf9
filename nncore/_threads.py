"""Thread control for the compiled kernels (documented wrappers over nncore._core)."""

from . import _core

_explicit = False  # set_num_threads chose a count (distributed training then keeps it)


def set_num_threads(n):
    """Set the number of threads every kernel uses by default.

    Parameters
    ----------
    n : int or None
        A positive thread count; None (or 0) removes the setting, so that OpenMP's own
        default applies again (``OMP_NUM_THREADS``, or a ``threadpoolctl.threadpool_limits``
        block).
    """
    global _explicit
    _core.set_num_threads(n)
    _explicit = not (n is None or n == 0)


def get_num_threads():
    """The number of threads the kernels use by default (>= 1).

    This is the value of :func:`set_num_threads` when one is in force, otherwise OpenMP's
    default, which follows ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits``
    (threadpoolctl lists nncore's OpenMP library in ``threadpool_info()``).
    """
    return _core.get_num_threads()


def _user_set():
    """True if the user chose a thread count with set_num_threads."""
    return _explicit
