"""nncore: dense neural networks on the CPU, fast.

A compiled C core (packed SIMD GEMM chosen at run time, fused dense layers, losses and
optimizers, OpenMP) under a small Keras-like Python API::

    import nncore as nn
    X, y = nn.datasets.load_digits()
    model = nn.Sequential([nn.Dense(64, 128, activation="relu"), nn.Dense(128, 10)], seed=0)
    model.compile(optimizer=nn.Adam(1e-3), loss="cross_entropy", metrics=["accuracy"])
    model.fit(X / 16, y, epochs=20, validation_split=0.1)
"""

from ._version import __version__
from . import _core

_core.init_cpu()  # honours NNCORE_CPU; a clear error if it names a path this CPU lacks

from ._config import config, show_config  # noqa: E402
from ._core import (  # noqa: E402
    available_cpu_paths,
    get_cpu_path,
    set_cpu_path,
)
from ._threads import get_num_threads, set_num_threads  # noqa: E402
from . import activations, datasets, initializers, losses, metrics, schedules  # noqa: E402
from .activations import (  # noqa: E402
    GELU, Exp, GELUTanh, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Softmax, Tanh,
)
from .callbacks import (  # noqa: E402
    Callback, EarlyStopping, History, LearningRateScheduler, ModelCheckpoint, ProgressBar,
    ReduceLROnPlateau, TerminateOnNaN,
)
from .gradcheck import check_gradients  # noqa: E402
from .io import ModelFileError, load_model  # noqa: E402
from .layers import (  # noqa: E402
    Activation, BatchNorm, Dense, Dropout, Layer, LayerNorm, Residual,
)
from .losses import (  # noqa: E402
    BCEWithLogitsLoss, CrossEntropy, CrossEntropyLoss, Huber, HuberLoss, L1Loss, Loss, MSELoss,
    PoissonNLLLoss,
)
from .models import NonFiniteLossError, Sequential  # noqa: E402
from .optimizers import SGD, Adam, AdamW, Optimizer  # noqa: E402
from .schedules import (  # noqa: E402
    CosineAnnealingLR, ExponentialLR, LinearLR, LRSchedule, OneCycleLR, SequentialLR, StepLR,
)

__all__ = [
    "__version__", "show_config", "config", "available_cpu_paths", "get_cpu_path",
    "set_cpu_path", "get_num_threads", "set_num_threads",
    # model and layers
    "Sequential", "Layer", "Dense", "Dropout", "Activation", "BatchNorm", "LayerNorm",
    "Residual",
    # activations, losses, optimizers, schedules
    "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "GELUTanh", "SiLU", "Exp",
    "Softmax",
    "Loss", "MSELoss", "L1Loss", "HuberLoss", "Huber", "PoissonNLLLoss", "BCEWithLogitsLoss",
    "CrossEntropyLoss", "CrossEntropy",
    "Optimizer", "SGD", "Adam", "AdamW",
    "LRSchedule", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "SequentialLR",
    "OneCycleLR",
    # callbacks
    "Callback", "History", "EarlyStopping", "TerminateOnNaN", "ModelCheckpoint",
    "LearningRateScheduler", "ReduceLROnPlateau", "ProgressBar", "NonFiniteLossError",
    # files, checks, submodules
    "load_model", "ModelFileError", "check_gradients",
    "activations", "datasets", "initializers", "losses", "metrics", "schedules",
    "distributed",
]


def __getattr__(name):
    # nncore.distributed is imported on first use (it is rarely needed; import time counts)
    if name == "distributed":
        import importlib
        return importlib.import_module(".distributed", __name__)
    raise AttributeError(f"module 'nncore' has no attribute {name!r}")
