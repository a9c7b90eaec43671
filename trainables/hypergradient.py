"""Hypergradient learning rates: an optimizer wrapper that adapts the learning rate online.

Baydin et al., "Online Learning Rate Adaptation with Hypergradient Descent" (ICLR 2018): the
derivative of the loss after a step with respect to the learning rate of that step is the dot
product of the new gradient with the step's direction, so the rate can follow its own gradient at
the cost of one dot product per step. Written here for SGD (with momentum or Nesterov), Adam and
AdamW; `HypergradientOptimizer` wraps an optimizer of those classes.

Notation (one training step ``t``, ``P`` the number of parameters, everything flat ``(P,)``):

- ``g_t = grad f(theta_t)``, the gradient the model computed (``p.grad``);
- ``d_t = theta_{t+1} - theta_t``, the step the base optimizer took with rate ``alpha_t``; for
  these optimizers ``d_t = alpha_t u_t`` with a direction ``u_t`` that does not depend on
  ``alpha_t`` (SGD: ``-(momentum buffer)``, or ``-(g + mu buf)`` with Nesterov; Adam:
  ``-m_hat / (sqrt(v_hat) + eps)``, the paper's Adam-HD ``u``; AdamW: that minus
  ``weight_decay * theta``, the decoupled decay being scaled by the rate too);
- the hypergradient ``h_t = d f(theta_t) / d log alpha_{t-1} = g_t . d_{t-1}`` (exact given the
  optimizer's state, whatever the optimizer, because ``d`` is linear in ``alpha``).

Rule (the paper's multiplicative, normalized variant, its section on the multiplicative rule)::

    c_t         = g_t . d_{t-1} / (|g_t| |d_{t-1}|)        cosine, in [-1, 1]
    log s_t     = clip(log s_{t-1} - beta c_t, log lower, log upper)
    alpha_t     = s_t * group["lr"]                            every parameter group

Why this form rather than the additive ``alpha_t = alpha_{t-1} - beta h_t``:

- scale-free ``beta``: the additive ``beta`` has units of lr^2 / loss-gradient^2, so a value
  good at lr=1e-4 is useless at 1e-1 and for another model; ``beta`` here is the largest change
  of ``log alpha`` per step, the same across learning-rate decades, models and optimizers, which
  is what lets an outer searcher share one ``beta`` range across initial rates;
- positive by construction (an exponential), and bounded: ``s`` stays in ``[lower, upper]``
  (default 1e-4 .. 1e4, four decades each way), which stops a run-away rate on a noisy or
  non-smooth loss without getting in the way of a useful adaptation (the benchmark's grid needs
  up to three decades);
- the same fixed point: ``c = 0`` exactly when the new gradient is orthogonal to the last step,
  the condition of an exact line search along it, which is where the additive rule stops too.

One scale ``s`` for all groups (the derivative of the loss with respect to a common factor of
every group's rate): the ratios between groups that the recipe sets (``layer_decay``,
``head_lr_mult``) stay as they are. ``group["lr"]`` keeps the nominal rate that the user or a
schedule sets (``set_epoch_lr``, a ``torch.optim.lr_scheduler`` on the wrapper or on the base
optimizer); the step trains with ``s * group["lr"]``, so a schedule scales the adapted rate and
the adapter learns a correction on top of the schedule.

The gradient in ``c`` is the loss's (``p.grad``), without the weight-decay term: the adapter
tunes the rate for the loss the model is trained and scored on. The first step (no previous
``d``) and a step where either norm is zero (frozen parameters, a zero gradient) leave ``s``.

Cost per step (``BENCHMARKS.md``, "Hypergradient learning rates", measures it): the adapter
keeps one ``(2, P)`` buffer, row 0 the gradient and row 1 the last step, whose rows are viewed as
the parameters' shapes; a step costs two fused copies into it (``torch._foreach_copy_``: the
gradients, and the parameters before the base step), one fused subtraction after it
(``torch._foreach_sub_``), one ``(2, P) @ (P, 2)`` product that gives ``g . d``, ``|g|^2`` and
``|d|^2`` at once, and one transfer of those numbers to the host (the base optimizer takes its
rate as a Python float). No allocation per step; memory: ``2 P`` values.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from searchers.validation import InvalidParameterError, is_real

SUPPORTED: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
STATE_VERSION = 1
DEFAULT_BETA = 0.5


@dataclass(frozen=True)
class HypergradientOptions:
    """Settings of the adapter.

    Attributes:
        beta: the hyper-learning-rate, the largest change of ``log(lr)`` in one step (0.5).
            In (0, 1]. Why 0.5: Adam's step and the next gradient have a cosine of at most about
            0.6 in magnitude even when the rate is far too small, so the rate climbs by about
            ``0.6 beta`` per step; with 0.1 the CNN on digits (138 steps) could not climb the
            decades it needed (good initial rates 1x), with 0.5 it could (10000x), and the MLP
            kept its range (BENCHMARKS.md, "Hypergradient learning rates": 0.1, 0.3, 0.5, 1.0).
        lower, upper: bounds of the learned factor ``s`` on the nominal rate (1e-4, 1e4).
    """

    beta: float = DEFAULT_BETA
    lower: float = 1e-4
    upper: float = 1e4


def check_beta(beta: Any, *, name: str = "beta") -> float:
    """``beta`` as a float in (0, 1], or an `InvalidParameterError` naming ``name``."""
    if not is_real(beta) or not math.isfinite(float(beta)) or not 0.0 < float(beta) <= 1.0:
        raise InvalidParameterError(
            f"{name} must be a number in (0, 1] (the largest change of log(lr) per step; "
            f"try 0.05 .. 1; default {DEFAULT_BETA}); got {beta!r}."
        )
    return float(beta)


class HypergradientOptimizer(torch.optim.Optimizer):
    """Wrap an SGD, Adam or AdamW optimizer so that its learning rate adapts every step.

    The wrapper shares the base optimizer's ``param_groups`` and ``state``; call ``step`` and
    ``zero_grad`` on the wrapper (``torch.amp.GradScaler.step(wrapper)`` works too). See the module
    docstring for the rule.

    >>> model = torch.nn.Linear(3, 1)
    >>> opt = HypergradientOptimizer(torch.optim.SGD(model.parameters(), lr=0.01), beta=0.05)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     model(torch.ones(4, 3)).pow(2).mean().backward()
    ...     _ = opt.step()
    >>> sorted(opt.lr_stats())
    ['lr', 'lr_max', 'lr_mean', 'lr_min']

    Args:
        optimizer: a ``torch.optim.SGD``, ``Adam`` or ``AdamW``; its groups' rates are the
            nominal rates.
        beta: the hyper-learning-rate (`HypergradientOptions`).
        lower, upper: bounds of the learned factor (`HypergradientOptions`).

    Attributes:
        optimizer: the wrapped optimizer.
        options: `HypergradientOptions`.
        log_scale: ``log s``, the learned log-factor on every group's nominal rate.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        beta: float = DEFAULT_BETA,
        lower: float = 1e-4,
        upper: float = 1e4,
    ) -> None:
        if not isinstance(optimizer, tuple(SUPPORTED.values())):
            raise InvalidParameterError(
                f"optimizer: hypergradient adaptation supports {', '.join(SUPPORTED)} "
                f"(torch.optim.SGD, Adam, AdamW); got {type(optimizer).__name__}."
            )
        if isinstance(optimizer, HypergradientOptimizer):
            raise InvalidParameterError("optimizer is already a HypergradientOptimizer.")
        check_beta(beta)
        if not 0.0 < lower <= 1.0 <= upper < math.inf:
            raise InvalidParameterError(
                f"lower and upper must satisfy 0 < lower <= 1 <= upper < inf; got {lower}, "
                f"{upper}."
            )
        kinds = {(p.device, p.dtype) for g in optimizer.param_groups for p in g["params"]}
        if len(kinds) > 1:
            raise InvalidParameterError(
                "optimizer: hypergradient adaptation needs every parameter on one device with one "
                f"dtype (it keeps the last step as one flat tensor); got {sorted(map(str, kinds))}"
            )
        self.optimizer = optimizer
        self.options = HypergradientOptions(beta=float(beta), lower=lower, upper=upper)
        self.log_scale = 0.0
        # (2, P): row 0 the gradient g_t, row 1 minus the last step, -d_{t-1} (the parameters
        # before the step minus after it: one fused subtraction, no negation); built on the first
        # step and again if the parameters change.
        self._buffer: torch.Tensor | None = None
        self._grad_rows: list[torch.Tensor] = []  # row 0 viewed as each parameter's shape
        self._step_rows: list[torch.Tensor] = []  # row 1 viewed as each parameter's shape
        self._buffer_params: list[torch.Tensor] = []  # the parameters the views follow
        self._has_step = False  # row 1 holds a step (not before the first step)
        self._step_lrs: list[float] = []  # the last group's rate of each step since lr_stats
        # Registers the groups (the same dicts, so the lists below share them) and hooks.
        super().__init__(optimizer.param_groups, optimizer.defaults)
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state

    # ------------------------------------------------------------------------------- stepping

    @property
    def scale(self) -> float:
        """``s``, the learned factor on every group's nominal ``lr``."""
        return math.exp(self.log_scale)

    @property
    def beta(self) -> float:
        """The hyper-learning-rate."""
        return self.options.beta

    def effective_lr(self, group: int = -1) -> float:
        """The rate the next step trains group ``group`` with (``s * group["lr"]``).

        Args:
            group: the index of the parameter group (default: the last, the head's).
        """
        return self.scale * float(self.param_groups[group]["lr"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Adapt the rate from this step's gradient, then take the base optimizer's step.

        Args:
            closure: not supported (SGD, Adam and AdamW step without one); must be None.
        """
        if closure is not None:
            raise InvalidParameterError(
                "HypergradientOptimizer.step takes no closure (SGD, Adam and AdamW need none)."
            )
        params = self._params()
        if not _same(params, self._buffer_params):
            self._make_buffer(params)  # also forgets the last step: it was another model's
        if self._has_step:
            self._adapt(params)
        scale = self.scale
        nominal = [group["lr"] for group in self.param_groups]
        torch._foreach_copy_(self._step_rows, params)  # row 1 = theta_t
        for group, lr in zip(self.param_groups, nominal, strict=True):
            group["lr"] = lr * scale
        try:
            self.optimizer.step()
        finally:
            for group, lr in zip(self.param_groups, nominal, strict=True):
                group["lr"] = lr
        torch._foreach_sub_(self._step_rows, params)  # row 1 = theta_t - theta_{t+1} = -d_t
        self._has_step = True
        self._step_lrs.append(scale * float(nominal[-1]))
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The base optimizer's ``zero_grad``.

        Args:
            set_to_none: as ``torch.optim.Optimizer.zero_grad``.
        """
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def lr_stats(self, *, reset: bool = True) -> dict[str, float]:
        """The last group's per-step rates since the last reset: ``lr_min``, ``lr_mean``,
        ``lr_max`` and ``lr`` (the next step's rate); before any step all four are that rate.

        Args:
            reset: start a new window (call it once per epoch and report the result).
        """
        now = self.effective_lr()
        rates = self._step_lrs or [now]
        stats = {
            "lr": now,
            "lr_min": min(rates),
            "lr_mean": math.fsum(rates) / len(rates),
            "lr_max": max(rates),
        }
        if reset:
            self._step_lrs = []
        return stats

    def reset_scale(self) -> None:
        """Forget the learned factor (``s = 1``): the next step trains at the nominal rate."""
        self.log_scale = 0.0

    # ------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus the adapter's (``"hypergradient"``)."""
        return {
            "base": self.optimizer.state_dict(),
            "hypergradient": {
                "version": STATE_VERSION,
                "log_scale": self.log_scale,
                "displacement": self._displacement(),  # (P,) d_{t-1}, or None
                "beta": self.options.beta,
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume exactly from `state_dict`; a plain optimizer's state dict (a run that trained
        without adaptation) loads into the base optimizer and starts the adapter fresh. The
        ``beta`` and bounds stay this wrapper's (a new config may change them).

        Args:
            state_dict: from `state_dict` (or a plain optimizer's ``state_dict()``).
        """
        if "hypergradient" not in state_dict:
            self._load_base(state_dict)
            self.log_scale, self._has_step = 0.0, False
            return
        own = state_dict["hypergradient"]
        if own.get("version") != STATE_VERSION:
            raise InvalidParameterError(
                f"hypergradient state version {own.get('version')!r} is not {STATE_VERSION}; it "
                "was written by another version of trainables.hypergradient."
            )
        self._load_base(state_dict["base"])
        log_scale = float(own["log_scale"])
        lo, hi = math.log(self.options.lower), math.log(self.options.upper)
        self.log_scale = min(max(log_scale, lo), hi)
        displacement = own["displacement"]
        params = self._params()
        self._make_buffer(params)
        if displacement is not None:
            size = sum(p.numel() for p in params)
            if displacement.numel() != size:
                raise InvalidParameterError(
                    f"hypergradient state holds a step of {displacement.numel()} values but the "
                    f"optimizer has {size} parameters; it belongs to another model."
                )
            assert self._buffer is not None
            with torch.no_grad():
                self._buffer[1].copy_(displacement.reshape(-1)).neg_()  # row 1 holds -d
            self._has_step = True
        self._step_lrs = []

    # ------------------------------------------------------------------------------- helpers

    def _load_base(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)
        # Optimizer.load_state_dict builds new group dicts and a new state: share them again.
        self.param_groups = self.optimizer.param_groups
        self.state = self.optimizer.state

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()  # the views are written in place under no_grad only
    def _make_buffer(self, params: list[torch.Tensor]) -> None:
        size = sum(p.numel() for p in params)
        first = params[0]
        self._buffer = torch.zeros(2, size, device=first.device, dtype=first.dtype)  # (2, P)
        self._grad_rows, self._step_rows, start = [], [], 0
        for p in params:
            self._grad_rows.append(self._buffer[0, start : start + p.numel()].view_as(p))
            self._step_rows.append(self._buffer[1, start : start + p.numel()].view_as(p))
            start += p.numel()
        self._buffer_params = list(params)
        self._has_step = False

    def _displacement(self) -> torch.Tensor | None:
        """``d_{t-1}`` as one flat ``(P,)`` tensor (the state dict's form), or None."""
        if not self._has_step or self._buffer is None:
            return None
        return self._buffer[1].neg()  # (P,)

    def _adapt(self, params: list[torch.Tensor]) -> None:
        assert self._buffer is not None
        grads = [p.grad for p in params]
        if all(grad is not None for grad in grads):
            torch._foreach_copy_(self._grad_rows, grads)  # type: ignore[arg-type]
        else:  # a parameter without a gradient (frozen) contributes nothing
            for grad, row in zip(grads, self._grad_rows, strict=True):
                if grad is None:
                    row.zero_()
                else:
                    row.copy_(grad)
        gram = self._buffer @ self._buffer.T  # (2, 2): [[|g|^2, -g.d], [-g.d, |d|^2]]
        (g_sq, minus_dot), (_, d_sq) = gram.tolist()  # the one transfer to the host
        dot = -minus_dot
        denominator = math.sqrt(g_sq * d_sq) if g_sq >= 0.0 and d_sq >= 0.0 else math.nan
        if not (denominator > 0.0 and math.isfinite(denominator) and math.isfinite(dot)):
            return  # a zero or non-finite gradient or step says nothing about the rate
        cosine = min(1.0, max(-1.0, dot / denominator))
        lo, hi = math.log(self.options.lower), math.log(self.options.upper)
        self.log_scale = min(max(self.log_scale - self.options.beta * cosine, lo), hi)


def hypergradient(
    optimizer: torch.optim.Optimizer,
    *,
    beta: float = DEFAULT_BETA,
    lower: float = 1e-4,
    upper: float = 1e4,
) -> HypergradientOptimizer:
    """Wrap ``optimizer`` (SGD, Adam or AdamW) so its learning rate adapts every step.

    Args:
        optimizer: a ``torch.optim.SGD``, ``Adam`` or ``AdamW``; its rate is the starting rate.
        beta: the hyper-learning-rate: the largest change of ``log(lr)`` per step, in (0, 1].
        lower, upper: bounds of the learned factor on the optimizer's own (nominal) rate.

    Returns:
        A `HypergradientOptimizer`: use it as the optimizer; ``lr_stats()`` gives the per-step
        rates since the last call (``lr_min``, ``lr_mean``, ``lr_max``, ``lr``) to report.
    """
    return HypergradientOptimizer(optimizer, beta=beta, lower=lower, upper=upper)


def base_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The base optimizer's part of a state dict (a plain optimizer's is returned as it is)."""
    return state_dict["base"] if "hypergradient" in state_dict else state_dict


def _same(params: list[torch.Tensor], known: list[torch.Tensor]) -> bool:
    """The same parameter tensors, in the same order (identity, not values)."""
    return len(params) == len(known) and all(map(operator.is_, params, known))
