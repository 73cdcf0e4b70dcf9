"""Learning-rate schedules, per epoch, in PyTorch's closed forms.

Use one as an optimizer option (``nn.SGD(lr=0.1, schedule=nn.CosineAnnealingLR(T_max=20))``:
the optimizer counts its own epochs, across ``fit`` calls) or in the
:class:`~nncore.LearningRateScheduler` callback (epochs counted within one ``fit`` call).
A schedule maps ``(epoch, base_lr)`` to the learning rate of that epoch (``epoch`` from 0).
"""

import math

from ._docs import inherit_docs
from ._validation import check_int, check_number

__all__ = ["LRSchedule", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
           "SequentialLR", "get"]


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


class LinearLR(LRSchedule):
    """``lr = base_lr * (start_factor + (end_factor - start_factor) * min(epoch,
    total_iters) / total_iters)`` (torch.optim.lr_scheduler.LinearLR): a linear warm-up from
    ``start_factor * base_lr`` over ``total_iters`` epochs, then constant. Follow it with
    another schedule through :class:`SequentialLR`.

    Parameters
    ----------
    start_factor : float, default 1/3
        In (0, 1].
    end_factor : float, default 1.0
        In [0, 1].
    total_iters : int, default 5
        Epochs of the ramp (>= 1).
    """

    def __init__(self, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        self.start_factor = check_number(start_factor, "start_factor")
        self.end_factor = check_number(end_factor, "end_factor")
        if not 0 < self.start_factor <= 1 or not 0 <= self.end_factor <= 1:
            raise ValueError(f"start_factor must lie in (0, 1] and end_factor in [0, 1], got "
                             f"{start_factor!r}, {end_factor!r}")
        self.total_iters = check_int(total_iters, "total_iters", 1)

    def __call__(self, epoch, base_lr):
        t = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * t)


class SequentialLR(LRSchedule):
    """One schedule after another (torch.optim.lr_scheduler.SequentialLR): ``schedules[i]``
    runs from epoch ``milestones[i - 1]`` on, counting its epochs from 0 there, e.g. a
    warm-up then a cosine::

        nn.SequentialLR([nn.LinearLR(0.1, total_iters=5), nn.CosineAnnealingLR(T_max=45)],
                        milestones=[5])

    Parameters
    ----------
    schedules : list of LRSchedule
        At least one.
    milestones : list of int
        ``len(schedules) - 1`` increasing epochs (>= 1).
    """

    def __init__(self, schedules, milestones):
        schedules = [get(s) if isinstance(s, dict) else s for s in schedules]
        if not schedules or not all(isinstance(s, LRSchedule) for s in schedules):
            raise TypeError(f"schedules must be a non-empty list of nncore schedules, got "
                            f"{schedules!r}")
        milestones = [check_int(m, "milestones[i]", 1) for m in milestones]
        if len(milestones) != len(schedules) - 1 or milestones != sorted(set(milestones)):
            raise ValueError(f"milestones must be {len(schedules) - 1} increasing epochs, one "
                             f"between each two schedules, got {milestones!r}")
        self.schedules, self.milestones = schedules, milestones

    def __call__(self, epoch, base_lr):
        k = sum(epoch >= m for m in self.milestones)
        start = self.milestones[k - 1] if k else 0
        return self.schedules[k](epoch - start, base_lr)

    def get_config(self):
        return {"name": "SequentialLR", "schedules": [s.get_config() for s in self.schedules],
                "milestones": list(self.milestones)}


_CLASSES = {c.__name__: c for c in (StepLR, ExponentialLR, CosineAnnealingLR, LinearLR,
                                    SequentialLR)}


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
