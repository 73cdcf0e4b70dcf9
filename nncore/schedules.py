"""Learning-rate schedules, per epoch, in PyTorch's closed forms.

Use one as an optimizer option (``nn.SGD(lr=0.1, schedule=nn.CosineAnnealingLR(T_max=20))``:
the optimizer counts its own epochs, across ``fit`` calls) or in the
:class:`~nncore.LearningRateScheduler` callback (epochs counted within one ``fit`` call).
A schedule maps ``(epoch, base_lr)`` to the learning rate of that epoch (``epoch`` from 0).
"""

import math

import numpy as np

from ._docs import inherit_docs
from ._validation import check_int, check_number

__all__ = ["LRSchedule", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
           "SequentialLR", "OneCycleLR", "get"]


class LRSchedule:
    """Base class: ``schedule(epoch, base_lr) -> lr``."""

    #: True for a schedule that sets the rate at every step (OneCycleLR), not every epoch.
    per_step = False

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


class OneCycleLR(LRSchedule):
    """The 1cycle policy (torch.optim.lr_scheduler.OneCycleLR), set at every optimizer step:
    the rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    the steps, then falls to ``max_lr / div_factor / final_div_factor``; with
    ``cycle_momentum`` the momentum (SGD's, or Adam's beta1) moves the other way between
    ``max_momentum`` and ``base_momentum``. The optimizer's own ``lr`` and momentum are
    replaced. Use it as an optimizer option (``nn.SGD(momentum=0.9,
    schedule=nn.OneCycleLR(0.1, epochs=10, steps_per_epoch=32))``); training past
    ``total_steps`` is an error, as in torch.

    Parameters
    ----------
    max_lr : float
    total_steps : int, optional
        Or ``epochs * steps_per_epoch``.
    epochs, steps_per_epoch : int, optional
    pct_start : float, default 0.3
    anneal_strategy : {"cos", "linear"}, default "cos"
    cycle_momentum : bool, default True
    base_momentum, max_momentum : float, default 0.85, 0.95
    div_factor : float, default 25
    final_div_factor : float, default 1e4
    three_phase : bool, default False
        A third phase: back to the initial rate by ``2 pct_start``, then down to the minimum.
    """

    per_step = True

    def __init__(self, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True,
                 base_momentum=0.85, max_momentum=0.95, div_factor=25.0,
                 final_div_factor=1e4, three_phase=False):
        self.max_lr = check_number(max_lr, "max_lr", 0.0)
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
            total_steps = check_int(epochs, "epochs", 1) * check_int(
                steps_per_epoch, "steps_per_epoch", 1)
        self.total_steps = check_int(total_steps, "total_steps", 2)
        self.pct_start = check_number(pct_start, "pct_start")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must lie in (0, 1), got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum = check_number(base_momentum, "base_momentum", 0.0)
        self.max_momentum = check_number(max_momentum, "max_momentum", 0.0)
        if not self.base_momentum <= self.max_momentum < 1:
            raise ValueError("base_momentum <= max_momentum < 1 is needed")
        self.div_factor = check_number(div_factor, "div_factor")
        self.final_div_factor = check_number(final_div_factor, "final_div_factor")
        if not self.div_factor > 0 or not self.final_div_factor > 0:
            raise ValueError("div_factor and final_div_factor must be positive")
        self.three_phase = bool(three_phase)

    def _phases(self):
        initial = self.max_lr / self.div_factor
        low = initial / self.final_div_factor
        lo_m, hi_m = self.base_momentum, self.max_momentum
        p, t = self.pct_start, self.total_steps
        if self.three_phase:
            return [(p * t - 1, initial, self.max_lr, hi_m, lo_m),
                    (2 * p * t - 2, self.max_lr, initial, lo_m, hi_m),
                    (t - 1, initial, low, hi_m, hi_m)]
        return [(p * t - 1, initial, self.max_lr, hi_m, lo_m),
                (t - 1, self.max_lr, low, lo_m, hi_m)]

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def at(self, step):
        """(lr, momentum or None) of optimizer step ``step`` (from 0), torch's formula."""
        if not 0 <= step < self.total_steps:
            raise ValueError(f"OneCycleLR: step {step + 1} is past total_steps="
                             f"{self.total_steps}; give it the steps of the whole training")
        start = 0
        phases = self._phases()
        for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                pct = (step - start) / (end - start)
                return (self._anneal(lr0, lr1, pct),
                        self._anneal(m0, m1, pct) if self.cycle_momentum else None)
            start = end
        raise AssertionError  # the last phase always matches

    def tables(self, start, n):
        """float64 arrays of the lr (and momentum, or None) of steps start .. start + n - 1,
        as far as total_steps reaches (at least one step)."""
        n = max(1, min(n, self.total_steps - start))
        vals = [self.at(s) for s in range(start, start + n)]
        lr = np.array([v[0] for v in vals], np.float64)
        mom = np.array([v[1] for v in vals], np.float64) if self.cycle_momentum else None
        return lr, mom

    def __call__(self, epoch, base_lr):
        raise TypeError("OneCycleLR sets the rate at every step: give it to the optimizer "
                        "(schedule=...), not to LearningRateScheduler")


_CLASSES = {c.__name__: c for c in (StepLR, ExponentialLR, CosineAnnealingLR, LinearLR,
                                    SequentialLR, OneCycleLR)}


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
