"""The fine-tuning example (issue #12 item 4): the bundled digits 0-4 backbone, the few-label
digits 5-9 splits, the example experiment file, a short tuning run from the backbone through
``tune_model`` on a real local Ray, and its validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hpt_ray.experiment import load_experiment
from trainables.cnn import cnn, digits_images
from trainables.finetune import (
    BACKBONE_CONFIG,
    BACKBONE_PATH,
    PRETRAIN_LABELS,
    few_label_datasets,
    few_label_digits,
    finetune_space,
    load_backbone,
)
from trainables.torch_options import TrainerOptionError, read_init_checkpoint
from trainables.torch_recipe import load_initial_weights
from trainables.torch_trainable import mlp

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scripts" / "examples" / "finetune_digits.yaml"
IMAGE = {"_input_shape": (1, 8, 8), "_n_outputs": 5}


def _accuracy(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(X).argmax(dim=1) == y).float().mean())


def test_backbone_ships_small_and_classifies_digits_0_to_4() -> None:
    assert BACKBONE_PATH.is_file()
    assert BACKBONE_PATH.stat().st_size < 200_000
    _, val = digits_images(seed=0, labels=PRETRAIN_LABELS)  # the fifth it was not trained on
    X, y = val.tensors
    assert _accuracy(load_backbone(), X, y) > 0.95
    # The same CNN freshly initialized is at chance: the score comes from the weights.
    torch.manual_seed(0)
    assert _accuracy(cnn({**BACKBONE_CONFIG, **IMAGE}).eval(), X, y) < 0.5


def test_init_checkpoint_loads_the_body_and_leaves_the_head_fresh() -> None:
    state, _ = read_init_checkpoint(str(BACKBONE_PATH))
    assert state
    assert all(k.startswith("features.") for k in state)
    model = cnn({**BACKBONE_CONFIG, **IMAGE})
    summary = load_initial_weights(model, state, "backbone")
    assert summary["loaded"] == len(state)
    assert summary["not_in_checkpoint"] == ["head.weight", "head.bias"]
    torch.testing.assert_close(
        model.state_dict()["features.0.0.weight"], state["features.0.0.weight"]
    )


def test_a_backbone_of_another_width_is_refused() -> None:
    state, _ = read_init_checkpoint(str(BACKBONE_PATH))
    narrow = cnn({**BACKBONE_CONFIG, "channels": 8, **IMAGE})
    with pytest.raises(ValueError, match="no tensor matches"):
        load_initial_weights(narrow, state, "backbone")


def test_few_label_splits() -> None:
    train, val, test = few_label_digits(per_class=10, seed=3)
    y_train, y_val, y_test = (d.tensors[1].numpy() for d in (train, val, test))
    assert np.bincount(y_train).tolist() == [10] * 5
    assert set(np.unique(y_val)) == set(np.unique(y_test)) == set(range(5))
    _, digits = load_digits(return_X_y=True)
    assert len(train) + len(val) + len(test) == int((digits >= 5).sum())
    assert 0.39 < len(test) / int((digits >= 5).sum()) < 0.41
    # No image appears in two splits (the 5-9 images of digits are all distinct).
    rows = [{x.numpy().tobytes() for x in d.tensors[0]} for d in (train, val, test)]
    assert len(rows[0] | rows[1] | rows[2]) == len(train) + len(val) + len(test)
    # The factory of the experiment file is the same split without the test part; seeded.
    again_train, again_val = few_label_datasets(per_class=10, seed=3)
    assert torch.equal(again_train.tensors[0], train.tensors[0])
    assert torch.equal(again_val.tensors[1], val.tensors[1])
    other_train, _, _ = few_label_digits(per_class=10, seed=4)
    assert not torch.equal(other_train.tensors[0], train.tensors[0])
    with pytest.raises(ValueError, match="per_class"):
        few_label_digits(per_class=0)


def test_example_file_is_the_python_example() -> None:
    experiment = load_experiment(EXAMPLE, load_data=False)
    # Relative to the experiment file, whatever the working directory.
    assert Path(experiment.kwargs["trainer_options"]["init_checkpoint"]).resolve() == (
        BACKBONE_PATH.resolve()
    )
    python_space = finetune_space()
    assert set(experiment.space) == set(python_space)
    for key, value in python_space.items():
        parsed = experiment.space[key]
        if hasattr(value, "lower"):  # a Ray domain: same kind and bounds
            assert type(parsed.get_sampler()) is type(value.get_sampler()), key
            assert (parsed.lower, parsed.upper) == (value.lower, value.upper), key
        else:
            assert parsed == value, key


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_finetune_example_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The experiment file, shortened to 3 trials x 2 epochs, run as ``hpt-ray run`` runs it."""
    from hpt_ray import tune_model

    monkeypatch.chdir(tmp_path)  # init_checkpoint is relative to the file, not here
    experiment = load_experiment(
        EXAMPLE,
        overrides=[("num_samples", 3), ("epochs", 2), ("storage_path", str(tmp_path))],
    )
    kwargs = {**experiment.kwargs, "verbose": 0}
    result = tune_model(experiment.model, experiment.space, **kwargs)
    assert len(result.trials) == 3
    assert (result.trials["status"] == "completed").all(), result.trials["error"].tolist()
    assert (result.trials["iterations"] == 2).all()
    with result.best_checkpoint.as_directory() as directory:
        loaded = json.loads((Path(directory) / "meta.json").read_text())["init_checkpoint"]
    assert loaded["loaded"] == len(read_init_checkpoint(str(BACKBONE_PATH))[0])
    assert loaded["not_in_checkpoint"] == ["head.weight", "head.bias"]
    # The exported best model predicts the test split it never saw, above chance (0.2).
    _, _, test = few_label_digits(per_class=10, seed=0)
    X, y = test.tensors
    assert _accuracy(result.best_model(), X, y) > 0.3


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_finetune_validation(tmp_path: Path) -> None:
    from hpt_ray import tune_model

    data = few_label_datasets(per_class=10, seed=0)
    common: dict[str, Any] = {
        "data": data,
        "kind": "torch",
        "searcher": "grid",
        "scheduler": "fifo",
        "epochs": 1,
        "verbose": 0,
        "storage_path": str(tmp_path),
    }
    # A path that does not exist: refused while planning, before any trial.
    with pytest.raises(TrainerOptionError, match=r"init_checkpoint.*nope\.pt.*does not exist"):
        tune_model(cnn, finetune_space(), trainer_options={"init_checkpoint": "nope.pt"}, **common)
    assert not list(tmp_path.iterdir())

    # A state dict of another model (an MLP): nothing matches, which needs the built model, so
    # the trial records the error. A recipe value out of range (layer_decay 0) fails its own
    # trial naming the key. One run, two trials.
    other = tmp_path.parent / f"{tmp_path.name}-mlp.pt"
    torch.save(mlp({"_n_features": 64, "_n_outputs": 10}).state_dict(), other)
    space = {**BACKBONE_CONFIG, "batch_size": 16, "layer_decay": [0.0, 0.5]}
    with pytest.warns(UserWarning, match="2 of 2 trials failed"):
        result = tune_model(cnn, space, trainer_options={"init_checkpoint": str(other)}, **common)
    errors = dict(zip(result.trials["config/layer_decay"], result.trials["error"], strict=True))
    assert "config['layer_decay'] must be > 0; got 0" in errors[0.0]
    assert "init_checkpoint" in errors[0.5]
    assert "no tensor matches the model by name and shape" in errors[0.5]
