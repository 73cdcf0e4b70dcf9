"""TEMPORARY shim: the ops wrappers from nncore._core, or NumPy stand-ins until they land."""
from . import _core

try:
    from ._core import (adam_update, bce_with_logits_loss, cross_entropy_loss,  # noqa: F401
                        dropout_backward, dropout_forward, mse_loss, sgd_update)
except ImportError:
    from ._ops_fallback import (adam_update, bce_with_logits_loss,  # noqa: F401
                                cross_entropy_loss, dropout_backward, dropout_forward,
                                mse_loss, sgd_update)
