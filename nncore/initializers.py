"""Weight initialisers: He and Glorot (normal and uniform) and PyTorch's default.

Each initialiser draws from a ``numpy.random.Generator`` in float64; the layer then stores the
values in its own dtype, so one seed gives the same weights (up to rounding) in float32 and
float64. For ``Dense(in, out)`` the fans are ``fan_in = in``, ``fan_out = out``.

=================  ============================================  ==================
name               W                                             b
=================  ============================================  ==================
``"default"``      U(-1/sqrt(fan_in), 1/sqrt(fan_in))            same (torch.nn.Linear)
``"he_normal"``    N(0, 2/fan_in)                                zeros
``"he_uniform"``   U(-sqrt(6/fan_in), sqrt(6/fan_in))            zeros
``"glorot_normal"``  N(0, 2/(fan_in+fan_out))                    zeros
``"glorot_uniform"`` U(-sqrt(6/(fan_in+fan_out)), +...)          zeros
``"zeros"``        zeros                                         zeros
=================  ============================================  ==================

(``"torch"`` is an alias of ``"default"``, ``"kaiming_*"`` of ``"he_*"`` and ``"xavier_*"``
of ``"glorot_*"``.)
"""

import math

import numpy as np

__all__ = ["NAMES", "initialize", "check"]


def _default(rng, fan_in, fan_out):
    bound = 1.0 / math.sqrt(fan_in)
    return (rng.uniform(-bound, bound, (fan_in, fan_out)), rng.uniform(-bound, bound, fan_out))


def _he_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), (fan_in, fan_out)), np.zeros(fan_out)


def _he_uniform(rng, fan_in, fan_out):
    bound = math.sqrt(6.0 / fan_in)
    return rng.uniform(-bound, bound, (fan_in, fan_out)), np.zeros(fan_out)


def _glorot_normal(rng, fan_in, fan_out):
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return rng.normal(0.0, std, (fan_in, fan_out)), np.zeros(fan_out)


def _glorot_uniform(rng, fan_in, fan_out):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, (fan_in, fan_out)), np.zeros(fan_out)


def _zeros(rng, fan_in, fan_out):
    return np.zeros((fan_in, fan_out)), np.zeros(fan_out)


_INITS = {
    "default": _default, "he_normal": _he_normal, "he_uniform": _he_uniform,
    "glorot_normal": _glorot_normal, "glorot_uniform": _glorot_uniform, "zeros": _zeros,
}
_ALIASES = {
    "torch": "default", "pytorch": "default", "kaiming_normal": "he_normal",
    "kaiming_uniform": "he_uniform", "xavier_normal": "glorot_normal",
    "xavier_uniform": "glorot_uniform",
}
#: The initialiser names (aliases: torch, kaiming_normal/uniform, xavier_normal/uniform).
NAMES = tuple(_INITS)


def check(init):
    """The canonical name of an initialiser, or a ValueError naming the choices."""
    if isinstance(init, str):
        name = _ALIASES.get(init.lower(), init.lower())
        if name in _INITS:
            return name
    raise ValueError(f"init={init!r} is not an initialiser; use one of "
                     f"{', '.join(repr(n) for n in NAMES)}")


def initialize(init, rng, fan_in, fan_out):
    """Draw ``(W, b)`` in float64 with the named initialiser.

    Parameters
    ----------
    init : str
        One of :data:`NAMES` (or an alias).
    rng : numpy.random.Generator
    fan_in, fan_out : int

    Returns
    -------
    W : ndarray, shape (fan_in, fan_out)
    b : ndarray, shape (fan_out,)
    """
    return _INITS[check(init)](rng, fan_in, fan_out)
