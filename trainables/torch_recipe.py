"""How a PyTorch trial trains: optimizer by name, learning-rate schedule, layer groups, freezing
and initial weights. Every function here is a pure function of the model, the config and the
epoch, so a resumed trial continues the recipe exactly (the freeze state and the learning rate
follow from the epoch number).

Notation: a model has ``L`` body blocks at depths ``0 .. L-1`` (0 = input side) and a head at
depth ``L``:

- the head is the model's ``head`` attribute when it is a module with parameters, else the last
  top-level child module with parameters;
- the body blocks are the children (with parameters) of the model's ``features`` attribute, in
  order; without ``features``, the other top-level children with parameters, in order;
- a parameter in neither (a top-level ``nn.Parameter``, a stem or norm beside ``features``) is at
  depth 0: it is decayed and frozen with the input side.

Learning rate of a parameter at depth ``d`` in epoch ``e`` (1-based)::

    lr * layer_decay ** (L - d) * factor(e)      body, d < L
    lr * head_lr_mult * factor(e)                head, d = L

``factor(e)`` is ``e / (warmup_epochs + 1)`` during the warmup epochs (linear from lr/(W+1) to
lr), then, with ``t = e - warmup_epochs`` and ``T = epochs - warmup_epochs``: 1 ("constant"),
``gamma ** ((t - 1) // step_size)`` ("step"), ``(1 + cos(pi (t - 1) / T)) / 2`` ("cosine").
It is applied per epoch, not per batch: what an epoch trains with is one number, reported as
``lr`` and restored by the epoch alone.

Hypergradient adaptation (``lr_adaptation="hypergradient"``, ``trainables.hypergradient``): the
optimizer is wrapped so that every step trains with ``s * lr(group, e)``, where ``s`` is one
factor learned online from consecutive gradients (``hypergradient_beta`` its hyper-learning-rate)
and the formula above stays the nominal rate. So the schedule scales the adapted rate: warmup,
step and cosine shape the run as without adaptation, and the adapter corrects the level (a
schedule's decay is not undone by the adapter resetting the rate, and a too small initial ``lr``
is raised by the adapter whatever the schedule). ``s`` is checkpointed with the optimizer.

Restoring a checkpoint under a config (`load_optimizer_state`): the optimizer's state (momentum
buffers, Adam moments, the adapter's ``s``) comes from the checkpoint and its hyperparameters
(``base_lr``, weight decay, momentum, betas, ...) from the config, so that a population-based
training exploit that restarts a member with a new config from a donor's checkpoint trains with the
new config. ``s`` is kept when the config's rates are the checkpoint's (a plain resume, or a PBT
step that changed other keys) and reset to 1 when they changed (the new ``lr`` is the new starting
rate; the donor's correction was for its own).

Freezing: during epochs ``1 .. freeze_epochs`` the parameters at depths ``< freeze_blocks``
(default: the whole body, a linear probe) do not train (``requires_grad`` off, so the optimizer
skips them, weight decay included) and their modules run in eval mode (batch-norm statistics and
dropout stay as pretrained); from epoch ``freeze_epochs + 1`` everything trains.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from searchers.validation import InvalidParameterError, did_you_mean
from trainables.hypergradient import (
    DEFAULT_BETA,
    SUPPORTED,
    HypergradientOptimizer,
    base_state_dict,
)

logger = logging.getLogger(__name__)

# Optimizers that step without a closure and take any parameter shape: LBFGS needs a closure,
# SparseAdam sparse gradients, Muon 2-D parameters only.
_EXCLUDED = ("lbfgs", "sparseadam", "muon")
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    name.lower(): cls
    for name, cls in vars(torch.optim).items()
    if inspect.isclass(cls)
    and issubclass(cls, torch.optim.Optimizer)
    and cls is not torch.optim.Optimizer
    and name.lower() not in _EXCLUDED
}
SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine")
LR_ADAPTATIONS: tuple[str, ...] = ("none", "hypergradient")


@dataclass(frozen=True)
class Recipe:
    """The searched training recipe of one trial (resolved config keys).

    Attributes:
        optimizer: a lower-case ``torch.optim`` class name (a key of `OPTIMIZERS`).
        lr: base learning rate.
        weight_decay: passed to the optimizer (refused by one that takes none when > 0).
        momentum: for sgd and rmsprop; None leaves the optimizer's default.
        nesterov: Nesterov momentum (sgd only; needs momentum > 0).
        epochs: epochs of the trial (the cosine schedule spans them).
        lr_schedule: one of `SCHEDULES`.
        step_size, gamma: the "step" schedule multiplies by gamma every step_size epochs.
        warmup_epochs: linear warmup epochs before the schedule.
        freeze_epochs: epochs at the start during which the first freeze_blocks depths are frozen.
        freeze_blocks: depths frozen then; None freezes the whole body.
        layer_decay: each depth below the head trains at this factor of the one above.
        head_lr_mult: the head's learning rate is lr times this.
        optimizer_options: further keyword arguments of the optimizer, from a dict
            ``config["optimizer"]`` (a conditional choice: ``{"name": "adam", "beta1": 0.9}``);
            ``beta1``/``beta2`` become ``betas``.
        lr_adaptation: "none" or "hypergradient" (the optimizer adapts its rate every step).
        hypergradient_beta: the adapter's hyper-learning-rate (largest change of log(lr) per
            step).
    """

    optimizer: str
    lr: float
    weight_decay: float
    momentum: float | None
    nesterov: bool
    epochs: int
    lr_schedule: str
    step_size: int
    gamma: float
    warmup_epochs: int
    freeze_epochs: int
    freeze_blocks: int | None
    layer_decay: float
    head_lr_mult: float
    optimizer_options: tuple[tuple[str, Any], ...] = ()
    lr_adaptation: str = "none"
    hypergradient_beta: float = DEFAULT_BETA


def optimizer_class(name: Any) -> type[torch.optim.Optimizer]:
    """The ``torch.optim`` class of a name, any case ("Adam", "rmsprop", "SGD").

    Raises:
        InvalidParameterError: an unknown name, with the closest known one.
    """
    if isinstance(name, str) and name.lower() in OPTIMIZERS:
        return OPTIMIZERS[name.lower()]
    raise InvalidParameterError(
        f"config['optimizer'] must be one of {sorted(OPTIMIZERS)}; got {name!r}"
        f"{did_you_mean(str(name).lower(), OPTIMIZERS)}"
    )


def lr_factor(recipe: Recipe, epoch: int) -> float:
    """The schedule's multiplier of every group's learning rate in ``epoch`` (1-based)."""
    warmup = recipe.warmup_epochs
    if epoch <= warmup:
        return epoch / (warmup + 1)
    t = epoch - warmup
    if recipe.lr_schedule == "step":
        return recipe.gamma ** ((t - 1) // recipe.step_size)
    if recipe.lr_schedule == "cosine":
        span = max(1, recipe.epochs - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * (t - 1) / span))
    return 1.0


@dataclass(frozen=True)
class Layers:
    """A model's parameters by depth (see the module docstring).

    Attributes:
        depths: ``depths[d]`` lists the trainable parameters at depth d; the last is the head.
        modules: ``modules[d]`` lists the modules at depth d (set to eval mode when frozen).
    """

    depths: list[list[nn.Parameter]]
    modules: list[list[nn.Module]]

    @property
    def n_body(self) -> int:
        """L, the number of body depths."""
        return len(self.depths) - 1


def model_layers(model: nn.Module) -> Layers:
    """Split ``model``'s trainable parameters into body depths and the head."""

    def has_params(module: nn.Module) -> bool:
        return any(True for _ in module.parameters())

    head = getattr(model, "head", None)
    if not (isinstance(head, nn.Module) and has_params(head)):
        with_params = [child for child in model.children() if has_params(child)]
        head = with_params[-1] if with_params else None
    features = getattr(model, "features", None)
    if isinstance(features, nn.Module) and features is not head and has_params(features):
        blocks = [child for child in features.children() if has_params(child)] or [features]
    else:
        blocks = [c for c in model.children() if c is not head and has_params(c)]
    n_body = len(blocks)
    owners: list[tuple[int, nn.Module]] = list(enumerate(blocks))
    if head is not None:
        owners.append((n_body, head))
    seen: set[int] = set()
    depths: list[list[nn.Parameter]] = [[] for _ in range(n_body + 1)]
    modules: list[list[nn.Module]] = [[] for _ in range(n_body + 1)]
    for depth, owner in owners:
        modules[depth].append(owner)
        for param in owner.parameters():
            if id(param) not in seen and param.requires_grad:
                seen.add(id(param))
                depths[depth].append(param)
    for param in model.parameters():  # outside head and blocks: the input side
        if id(param) not in seen and param.requires_grad:
            seen.add(id(param))
            depths[0 if n_body else n_body].append(param)
    return Layers(depths=depths, modules=modules)


def optimizer_options(name: str, options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Check the keyword arguments of a dict ``config["optimizer"]`` against the optimizer's
    signature (``beta1``/``beta2`` become ``betas``), naming a key it does not take."""
    cls = OPTIMIZERS[name]
    accepted = {p for p in inspect.signature(cls).parameters if p not in ("params", "lr", "self")}
    options = dict(options)
    if "beta1" in options or "beta2" in options:
        if "betas" not in accepted:
            raise InvalidParameterError(
                f"config['optimizer']: {name!r} takes no betas (beta1/beta2); it takes "
                f"{', '.join(sorted(accepted))}."
            )
        default = inspect.signature(cls).parameters["betas"].default
        b1 = float(options.pop("beta1", default[0]))
        b2 = float(options.pop("beta2", default[1]))
        options["betas"] = (b1, b2)
    for key in options:
        if key not in accepted:
            raise InvalidParameterError(
                f"config['optimizer'][{key!r}]: {name!r} takes no {key!r}"
                f"{did_you_mean(str(key), accepted)} (it takes "
                f"{', '.join(sorted(accepted))})."
            )
    return tuple(sorted(options.items()))


def make_optimizer(layers: Layers, recipe: Recipe) -> torch.optim.Optimizer:
    """The optimizer with one parameter group per depth (empty depths left out); each group keeps
    its unscheduled rate as ``base_lr``, so `set_epoch_lr` is a function of the epoch alone."""
    cls = OPTIMIZERS[recipe.optimizer]
    accepted = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    if recipe.weight_decay:
        if "weight_decay" not in accepted:
            raise InvalidParameterError(
                f"config['weight_decay']={recipe.weight_decay} but optimizer "
                f"{recipe.optimizer!r} takes no weight decay; set it to 0 or pick another."
            )
        kwargs["weight_decay"] = recipe.weight_decay
    if recipe.momentum is not None and "momentum" in accepted:
        kwargs["momentum"] = recipe.momentum
    if recipe.nesterov and recipe.optimizer == "sgd":
        if not dict(recipe.optimizer_options).get("momentum", recipe.momentum):
            raise InvalidParameterError(
                "config['nesterov']=True needs config['momentum'] > 0 (got "
                f"{recipe.momentum}); raise the momentum or turn nesterov off."
            )
        kwargs["nesterov"] = True
    kwargs.update(dict(recipe.optimizer_options))
    n_body = layers.n_body
    groups = []
    for depth, params in enumerate(layers.depths):
        if not params:
            continue
        if depth == n_body:
            base = recipe.lr * recipe.head_lr_mult
        else:
            base = recipe.lr * recipe.layer_decay ** (n_body - depth)
        groups.append({"params": params, "lr": base, "base_lr": base, "depth": depth})
    if not groups:
        raise InvalidParameterError("the model from model_factory has no trainable parameters.")
    optimizer = cls(groups, lr=recipe.lr, **kwargs)  # type: ignore[call-arg]
    if recipe.lr_adaptation == "hypergradient":
        return HypergradientOptimizer(optimizer, beta=recipe.hypergradient_beta)
    return optimizer


def check_lr_adaptation(adaptation: Any, optimizer: str) -> str:
    """``config["lr_adaptation"]`` (None is "none"), checked against the optimizer.

    Raises:
        InvalidParameterError: an unknown name, or an optimizer the adapter does not support.
    """
    if adaptation is None:
        return "none"
    if not isinstance(adaptation, str) or adaptation.lower() not in LR_ADAPTATIONS:
        raise InvalidParameterError(
            f"config['lr_adaptation'] must be one of {list(LR_ADAPTATIONS)} or None; got "
            f"{adaptation!r}{did_you_mean(str(adaptation).lower(), LR_ADAPTATIONS)}."
        )
    adaptation = adaptation.lower()
    if adaptation == "hypergradient" and optimizer not in SUPPORTED:
        raise InvalidParameterError(
            f"config['lr_adaptation']='hypergradient' supports the optimizers "
            f"{', '.join(SUPPORTED)}; config['optimizer'] is {optimizer!r}. Use one of those, "
            "or set lr_adaptation to 'none'."
        )
    return adaptation


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load a checkpoint's optimizer state, keeping this optimizer's (the config's)
    hyperparameters; see the module docstring (restoring a checkpoint under a config)."""
    # Optimizer.load_state_dict restores every key of each group (weight_decay, momentum, betas,
    # base_lr): under PBT those are the donor's and would override the member's new config.
    fresh = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    if not isinstance(optimizer, HypergradientOptimizer):
        saved = base_state_dict(saved)
    optimizer.load_state_dict(saved)
    same_rates = all(
        group.get("base_lr") == config_group.get("base_lr")
        for group, config_group in zip(optimizer.param_groups, fresh, strict=True)
    )
    for group, config_group in zip(optimizer.param_groups, fresh, strict=True):
        group.update(config_group)
    if isinstance(optimizer, HypergradientOptimizer) and not same_rates:
        optimizer.reset_scale()


def set_epoch_lr(optimizer: torch.optim.Optimizer, recipe: Recipe, epoch: int) -> float:
    """Set every group's (nominal) rate for ``epoch``; returns the head's (the last group's).
    A `HypergradientOptimizer` trains with its learned factor times this rate."""
    factor = lr_factor(recipe, epoch)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return float(optimizer.param_groups[-1]["lr"])


def frozen_depths(recipe: Recipe, layers: Layers, epoch: int) -> int:
    """How many depths (from the input side) are frozen in ``epoch``."""
    if epoch > recipe.freeze_epochs:
        return 0
    n_body = layers.n_body
    return n_body if recipe.freeze_blocks is None else min(recipe.freeze_blocks, n_body)


def apply_freeze(model: nn.Module, layers: Layers, n_frozen: int) -> None:
    """Put the model in training mode with depths ``< n_frozen`` frozen (eval mode, no grad)."""
    model.train()
    for depth, params in enumerate(layers.depths):
        for param in params:
            param.requires_grad_(depth >= n_frozen)
    for depth in range(n_frozen):
        for module in layers.modules[depth]:
            module.eval()


def load_initial_weights(
    model: nn.Module, state: dict[str, torch.Tensor], label: str
) -> dict[str, Any]:
    """Copy the tensors of ``state`` whose name and shape match into ``model``.

    Returns:
        ``{"loaded": n, "skipped": [...], "not_in_checkpoint": [...]}`` (names, with shapes for
        a mismatch), also logged as a warning when anything was skipped.

    Raises:
        ValueError: no parameter matched (naming a few names on each side).
    """
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    parameters = {name for name, _ in model.named_parameters()}
    # Buffers alone (batch norm's num_batches_tracked is a scalar in every width) are no match.
    if not parameters & set(matched):
        raise InvalidParameterError(
            f"trainer_options['init_checkpoint'] {label}: no tensor matches the model by name and "
            f"shape (checkpoint: {', '.join(list(state)[:5])}...; model: "
            f"{', '.join(list(own)[:5])}...). Build the same architecture as the checkpoint's "
            "model (parameter names and shapes must agree)."
        )
    model.load_state_dict(matched, strict=False)
    skipped = [
        f"{k} (shape {tuple(v.shape)} vs {tuple(own[k].shape)})" if k in own else f"{k} (unused)"
        for k, v in state.items()
        if k not in matched
    ]
    fresh = [k for k in own if k not in matched]
    if skipped or fresh:
        logger.warning(
            "init_checkpoint %s: loaded %d tensors; skipped %s; initialized fresh: %s.",
            label,
            len(matched),
            ", ".join(skipped) or "none",
            ", ".join(fresh) or "none",
        )
    return {"loaded": len(matched), "skipped": skipped, "not_in_checkpoint": fresh}
