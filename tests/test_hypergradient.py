"""Hypergradient learning rates (issue #17 part 1): the rule against finite differences, exact
resume, each base optimizer, the trainable's keys and reports, and a checkpoint restored under a
new config keeps the new config's optimizer hyperparameters (the PBT exploit path)."""

from __future__ import annotations

import io
import math
import os
import tempfile

import pytest
import torch
from ray import tune

import hpt_ray
from trainables.hypergradient import HypergradientOptimizer, hypergradient
from trainables.torch_recipe import (
    load_optimizer_state,
    make_optimizer,
    model_layers,
    set_epoch_lr,
)
from trainables.torch_trainable import (
    CHECKPOINT_FILE,
    TorchTrainingDefaults,
    _EarlyStop,
    _restore,
    mlp,
    resolve_settings,
)

A = torch.diag(torch.tensor([1.0, 4.0, 10.0], dtype=torch.float64))  # (3, 3)
THETA0 = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)  # (3,)


def _quadratic(theta: torch.Tensor) -> torch.Tensor:
    return 0.5 * theta @ A @ theta


def _one_step_loss(alpha: float) -> float:
    """f(theta_1) after one plain SGD step of rate alpha from THETA0."""
    return float(_quadratic(THETA0 - alpha * (A @ THETA0)))


@pytest.mark.parametrize("ratio", [0.3, 1.7])
def test_quadratic_update_matches_the_finite_difference_of_the_next_loss(ratio):
    g0 = A @ THETA0
    best = float(g0 @ g0 / (g0 @ A @ g0))  # the rate that minimises f(theta_1)
    alpha0, beta = ratio * best, 0.05
    theta = torch.nn.Parameter(THETA0.clone())
    opt = hypergradient(torch.optim.SGD([theta], lr=alpha0), beta=beta)
    for _ in range(2):  # the second step adapts from the first step's displacement
        opt.zero_grad()
        _quadratic(theta).backward()
        opt.step()
    alpha1 = opt.effective_lr()
    eps = 1e-6 * alpha0
    h_fd = (_one_step_loss(alpha0 + eps) - _one_step_loss(alpha0 - eps)) / (2 * eps)  # df/dalpha
    theta1 = THETA0 - alpha0 * g0
    g1 = A @ theta1
    # d log(lr) = -beta cos(g1, d0) with d0 = -alpha0 g0, and g1 . d0 = alpha0 df/dalpha.
    expected = -beta * alpha0 * h_fd / (float(g1.norm()) * alpha0 * float(g0.norm()))
    assert math.log(alpha1 / alpha0) == pytest.approx(expected, rel=1e-5)
    # Below the best rate the loss still falls along the step: the rate rises; above, it falls.
    assert (alpha1 > alpha0) == (ratio < 1)
    assert abs(math.log(alpha1 / best)) < abs(math.log(alpha0 / best))


def _regression_problem() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen)  # (64, 5)
    y = x @ torch.randn(5, generator=gen) + 0.1 * torch.randn(64, generator=gen)  # (64,)
    return x, y


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=1e-3),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-4),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-4, weight_decay=0.01),
}


def _model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _train(model, opt, steps: int, start: int = 0) -> tuple[list[float], list[float]]:
    x, y = _regression_problem()
    losses, rates = [], []
    for step in range(start, start + steps):
        batch = slice(16 * (step % 4), 16 * (step % 4) + 16)
        opt.zero_grad()
        loss = (model(x[batch]).squeeze(1) - y[batch]).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        rates.append(opt.effective_lr() if isinstance(opt, HypergradientOptimizer) else math.nan)
    return losses, rates


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_optimizer_adapts_and_resumes_bit_identically(name):
    model = _model()
    opt = hypergradient(OPTIMIZERS[name](model.parameters()), beta=0.05)
    start_lr = opt.effective_lr()
    losses, _ = _train(model, opt, 40)
    # A rate far too small for this problem: consecutive gradients agree and the rate rises.
    assert opt.effective_lr() > 3 * start_lr
    assert losses[-1] < losses[0]
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    _, rates = _train(model, opt, 20, start=40)
    after = [p.detach().clone() for p in model.parameters()]

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # what a checkpoint can hold
    model2 = _model()
    model2.load_state_dict(saved["model"])
    opt2 = hypergradient(OPTIMIZERS[name](model2.parameters()), beta=0.05)
    opt2.load_state_dict(saved["optimizer"])
    _, rates2 = _train(model2, opt2, 20, start=40)
    assert rates2 == rates
    for p, q in zip(after, model2.parameters(), strict=True):
        assert torch.equal(p, q.detach())


def test_the_saved_step_is_the_parameters_change():
    # The state dict's "displacement" is d = theta_after - theta_before of the last step (the
    # format checkpoints written before the buffer rewrite hold too), whatever the adapter keeps.
    model = _model()
    opt = hypergradient(torch.optim.Adam(model.parameters(), lr=1e-3))
    _train(model, opt, 3)
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])  # (P,)
    _train(model, opt, 1, start=3)
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])  # (P,)
    saved = opt.state_dict()["hypergradient"]["displacement"]
    assert torch.equal(saved, after - before)


def test_a_frozen_parameter_is_left_out_of_the_cosine():
    # A parameter without a gradient (requires_grad off) moves nowhere and counts for nothing:
    # the run equals one whose optimizer never had it.
    model, twin = _model(), _model()
    model[0].bias.requires_grad_(False)
    twin[0].bias.requires_grad_(False)
    opt = hypergradient(torch.optim.SGD(model.parameters(), lr=1e-3), beta=0.05)
    trained = [p for p in twin.parameters() if p.requires_grad]
    twin_opt = hypergradient(torch.optim.SGD(trained, lr=1e-3), beta=0.05)
    _, rates = _train(model, opt, 10)
    _, twin_rates = _train(twin, twin_opt, 10)
    assert rates == pytest.approx(twin_rates, rel=1e-6)
    assert rates[-1] > rates[0]


def test_the_schedule_scales_the_adapted_rate():
    settings = resolve_settings(
        {"lr": 1e-3, "lr_adaptation": "hypergradient", "hypergradient_beta": 0.1},
        TorchTrainingDefaults(),
    )
    model = mlp({"_n_features": 5, "_n_outputs": 1, "n_layers": 1, "hidden_size": 8})
    opt = make_optimizer(model_layers(model), settings.recipe)
    assert isinstance(opt, HypergradientOptimizer)
    assert opt.beta == 0.1
    set_epoch_lr(opt, settings.recipe, 1)
    _train(model, opt, 10)
    scale = opt.scale
    assert scale != 1.0
    set_epoch_lr(opt, settings.recipe, 2)  # the nominal rate is the recipe's every epoch
    assert opt.param_groups[-1]["lr"] == 1e-3
    assert opt.effective_lr() == pytest.approx(scale * 1e-3)


@pytest.mark.parametrize(
    ("config", "key", "needle"),
    [
        ({"lr_adaptation": "hypergradiant"}, "lr_adaptation", "did you mean 'hypergradient'"),
        ({"lr_adaptation": "hypergradient", "optimizer": "rmsprop"}, "lr_adaptation", "rmsprop"),
        ({"lr_adaptation": "hypergradient", "hypergradient_beta": 0.0}, "hypergradient_beta", ""),
        ({"hypergradient_beta": -0.1}, "hypergradient_beta", "(0, 1]"),
        ({"hypergradient_beta": "big"}, "hypergradient_beta", "'big'"),
    ],
)
def test_bad_values_name_the_key(config, key, needle):
    with pytest.raises(hpt_ray.InvalidParameterError, match=f"config\\['{key}'\\]") as info:
        resolve_settings(config, TorchTrainingDefaults())
    assert needle in str(info.value)


def test_a_bad_constant_in_the_space_fails_before_any_trial(tmp_path):
    space = {
        "lr": tune.loguniform(1e-3, 1e-1),
        "lr_adaptation": "hypergradient",
        "optimizer": "rmsprop",
    }
    with pytest.raises(hpt_ray.InvalidParameterError, match=r"lr_adaptation.*rmsprop"):
        hpt_ray.tune_model(
            mlp, space, data="iris", num_samples=1, storage_path=tmp_path, verbose=0
        )


def test_the_wrapper_refuses_an_unsupported_optimizer():
    with pytest.raises(hpt_ray.InvalidParameterError, match="RMSprop"):
        hypergradient(torch.optim.RMSprop(_model().parameters()))


# ------------------------------------------------------------------ restore under a new config


def _checkpoint(directory: str, config: dict, steps: int) -> tuple[dict, torch.nn.Module]:
    """Train a few steps under ``config`` and write a checkpoint as the trainable does."""
    settings = resolve_settings(config, TorchTrainingDefaults())
    model = _model()
    opt = make_optimizer(model_layers(model), settings.recipe)
    set_epoch_lr(opt, settings.recipe, 1)
    _train(model, opt, steps)
    state = {
        "version": 2,
        "epoch": 1,
        "seed": 0,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    torch.save(state, os.path.join(directory, CHECKPOINT_FILE))
    return state, model


def _restored(directory: str, config: dict) -> torch.optim.Optimizer:
    settings = resolve_settings(config, TorchTrainingDefaults())
    model = _model()
    opt = make_optimizer(model_layers(model), settings.recipe)
    checkpoint = tune.Checkpoint.from_directory(directory)
    _restore(checkpoint, model, opt, None, _EarlyStop(), settings, torch.device("cpu"))
    return opt


def test_restore_under_a_new_config_uses_its_optimizer_hyperparameters():
    donor = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}
    member = {"optimizer": "sgd", "lr": 0.02, "momentum": 0.5, "weight_decay": 0.05}
    with tempfile.TemporaryDirectory() as directory:
        state, _ = _checkpoint(directory, donor, 5)
        opt = _restored(directory, member)
    for group in opt.param_groups:
        assert group["weight_decay"] == 0.05
        assert group["momentum"] == 0.5
        assert group["base_lr"] == 0.02
    # ... and the donor's optimizer state (momentum buffers) came with the checkpoint.
    buffers = [opt.state[p]["momentum_buffer"] for g in opt.param_groups for p in g["params"]]
    saved = [s["momentum_buffer"] for s in state["optimizer"]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(buffers, saved, strict=True))


def test_restore_keeps_the_adapted_rate_unless_the_config_lr_changed():
    donor = {"optimizer": "adam", "lr": 1e-4, "lr_adaptation": "hypergradient"}
    with tempfile.TemporaryDirectory() as directory:
        _checkpoint(directory, {**donor, "hypergradient_beta": 0.1}, 30)
        same_lr = _restored(directory, {**donor, "weight_decay": 0.01, "hypergradient_beta": 0.05})
        new_lr = _restored(directory, {**donor, "lr": 2e-4})
        plain = _restored(directory, {"optimizer": "adam", "lr": 1e-4})
    assert isinstance(same_lr, HypergradientOptimizer)
    assert same_lr.scale > 2.0  # kept: the adapter continues where the checkpoint was
    assert same_lr.beta == 0.05  # the new config's beta
    assert same_lr.param_groups[0]["weight_decay"] == 0.01
    assert isinstance(new_lr, HypergradientOptimizer)
    assert new_lr.scale == 1.0  # a new initial rate: the donor's correction was for its own
    assert not isinstance(plain, HypergradientOptimizer)
    assert plain.param_groups[0]["lr"] == 1e-4


def test_a_plain_checkpoint_loads_into_an_adapting_optimizer():
    model = _model()
    plain = torch.optim.Adam(model.parameters(), lr=1e-3)
    _train(model, plain, 3)
    wrapped = hypergradient(torch.optim.Adam(_model().parameters(), lr=1e-3))
    load_optimizer_state(wrapped, plain.state_dict())
    assert wrapped.scale == 1.0
    assert wrapped.param_groups is wrapped.optimizer.param_groups


# ----------------------------------------------------------------------------- a real run


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_tune_model_reports_the_per_step_rates(tmp_path):
    space = {
        "lr": tune.loguniform(1e-4, 1e-3),
        "lr_adaptation": "hypergradient",
        "hypergradient_beta": tune.loguniform(0.02, 0.1),
        "hidden_size": 16,
        "n_layers": 1,
        "batch_size": 32,
    }
    result = hpt_ray.tune_model(
        mlp,
        space,
        data="iris",
        searcher="random",
        scheduler="fifo",
        num_samples=2,
        max_concurrent=2,
        epochs=2,
        seed=0,
        storage_path=tmp_path,
        verbose=0,
    )
    assert (result.trials["status"] == "completed").all(), result.trials["error"]
    table = result.result_grid.get_dataframe()  # each trial's last report
    assert len(table) == 2
    for _, row in table.iterrows():
        assert row["lr_min"] < row["lr_mean"] < row["lr_max"]  # it moved within the epoch
        beta = row["config/hypergradient_beta"]
        assert row["lr_min"] <= row["lr"] <= row["lr_max"] * math.exp(beta)
    # ... and in our own trials table, the one TuneResult.trials and results.parquet hold.
    trials = result.trials.set_index("trial_id")
    for _, row in table.iterrows():
        for key in ("lr", "lr_min", "lr_mean", "lr_max", "val_loss"):
            assert trials.loc[row["trial_id"], f"last/{key}"] == pytest.approx(row[key])
        assert trials.loc[row["trial_id"], "last/epoch"] == 2
