"""Learning-rate schedules, per epoch, in PyTorch's closed forms.

Use one as an optimizer option (``nn.SGD(lr=0.1, schedule=nn.CosineAnnealingLR(T_max=20))``:
the optimizer counts its own epochs, across ``fit`` calls) or in the
:class:`~nncore.LearningRateScheduler` callback (epochs counted within one ``fit`` call).
A schedule maps ``(epoch, base_lr)`` to the learning rate of that epoch (``epoch`` from 0).
"""

import math

from ._docs import inherit_docs
from ._validation import check_int, check_number

__all__ = ["LRSchedule", "StepLR", "ExponentialLR", "CosineAnnealingLR", "get"]


class LRSchedule:
    """Base class: ``schedule(epoch, base_lr) -> lr``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherit_docs(cls)

    def __call__(self, epoch, base_lr):
        """The learning rate of ``epoch`` (from 0) for a schedule starting at ``base_lr``."""
        raise NotImplementedError

    def get_config(self):
        """The schedule as a JSON-able dict (with its class ``"name"``)."""
        return {"name": type(self).__name__, **self.__dict__}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(other) is type(self) and other.__dict__ == self.__dict__


class StepLR(LRSchedule):
    """``lr = base_lr * gamma ** (epoch // step_size)`` (torch.optim.lr_scheduler.StepLR).

    Parameters
    ----------
    step_size : int
        Epochs between decays (>= 1).
    gamma : float, default 0.1
        Multiplicative factor.
    """

    def __init__(self, step_size, gamma=0.1):
        self.step_size = check_int(step_size, "step_size", 1)
        self.gamma = check_number(gamma, "gamma", 0.0)

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRSchedule):
    """``lr = base_lr * gamma ** epoch`` (torch.optim.lr_scheduler.ExponentialLR).

    Parameters
    ----------
    gamma : float
        Multiplicative factor per epoch.
    """

    def __init__(self, gamma):
        self.gamma = check_number(gamma, "gamma", 0.0)

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRSchedule):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``
    (torch.optim.lr_scheduler.CosineAnnealingLR, closed form; periodic past T_max).

    Parameters
    ----------
    T_max : int
        Epochs of the half cosine period (>= 1).
    eta_min : float, default 0.0
        Minimum learning rate.
    """

    def __init__(self, T_max, eta_min=0.0):
        self.T_max = check_int(T_max, "T_max", 1)
        self.eta_min = check_number(eta_min, "eta_min", 0.0)

    def __call__(self, epoch, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


_CLASSES = {c.__name__: c for c in (StepLR, ExponentialLR, CosineAnnealingLR)}


def get(config):
    """A schedule from :meth:`LRSchedule.get_config`'s dict (or None)."""
    if config is None or isinstance(config, LRSchedule):
        return config
    cfg = dict(config)
    name = cfg.pop("name", None)
    if name not in _CLASSES:
        raise ValueError(f"unknown learning-rate schedule {config!r}; known: "
                         f"{sorted(_CLASSES)}")
    return _CLASSES[name](**cfg)
