"""A PyTorch trial's checkpoint, reloaded in a fresh process, predicts what the run reported.

Each test tunes through Ray Tune's own API (no hpt_ray), takes the trial's final checkpoint and
calls `load_model` in a new Python process that can import neither this test module nor its
factories, on the RAW validation features of the same Dataset.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ray import tune
from sklearn.metrics import r2_score

from trainables.data import Dataset, load_data
from trainables.torch_trainable import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    TorchPredictor,
    load_model,
    make_torch_trainable,
)

pytestmark = pytest.mark.usefixtures("ray_local")

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: argv[1] is a JSON list of [checkpoint dir, X.npy, output prefix].
FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    from trainables.torch_trainable import load_model

    for checkpoint, X_path, prefix in json.loads(sys.argv[1]):
        model = load_model(checkpoint)
        X = np.load(X_path)
        np.save(prefix + "predict.npy", model.predict(X))
        with torch.no_grad():
            np.save(prefix + "forward.npy", model(X).numpy())
            # The checkpoint's weights alone on raw features: what reloading did before.
            bare = model.model(torch.as_tensor(X, dtype=torch.float32))
            np.save(prefix + "bare.npy", bare.numpy())
        if model.task == "classification":
            np.save(prefix + "proba.npy", model.predict_proba(X))
        info = {"training": model.training, "y_mean": model.y_mean, "y_scale": model.y_scale,
                "device": str(model.x_mean.device), "test_module_loaded": "test_torch_export" in
                sys.modules or "tests.test_torch_export" in sys.modules}
        with open(prefix + "info.json", "w") as f:
            json.dump(info, f)
    """
)


def _tune_one(fn: Any, data: Dataset, space: dict[str, Any], storage: Path, name: str) -> Any:
    results = tune.Tuner(
        tune.with_parameters(fn, data=data),
        param_space=space,
        run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0),
    ).fit()
    assert not results.errors, results.errors
    (result,) = results
    return result


def _predict_in_fresh_process(jobs: dict[str, tuple[Any, np.ndarray]], work: Path) -> dict:
    """`load_model` + predictions in a new interpreter, per job name -> (checkpoint, raw X)."""
    spec = []
    for name, (result, X) in jobs.items():
        np.save(work / f"{name}-X.npy", np.asarray(X))
        spec.append([result.checkpoint.path, str(work / f"{name}-X.npy"), str(work / f"{name}-")])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, json.dumps(spec)],
        cwd=work,  # not the repository: nothing of tests/ is importable there
        env=env,
        check=True,
        timeout=120,
    )
    out: dict[str, dict[str, Any]] = {}
    for name in jobs:
        out[name] = {"info": json.loads((work / f"{name}-info.json").read_text())}
        for kind in ("predict", "forward", "bare", "proba"):
            path = work / f"{name}-{kind}.npy"
            if path.exists():
                out[name][kind] = np.load(path)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Dataset, Any]]:
    storage = tmp_path_factory.mktemp("export-runs")
    digits = load_data("digits", seed=0)
    # Factory by import path: the checkpoint stores "trainables.torch_trainable:mlp".
    classify = make_torch_trainable(
        "trainables.torch_trainable:mlp", task="classification", data=digits, epochs=3
    )
    clf = _tune_one(
        classify, digits, {"hidden_size": 32, "n_layers": 1, "lr": 1e-2}, storage, "digits"
    )

    def tanh_net(config: dict[str, Any]) -> torch.nn.Module:
        # Nested, so stored by value: the fresh process cannot import it.
        width = config["width"]
        return torch.nn.Sequential(
            torch.nn.Linear(config["_n_features"], width),
            torch.nn.Tanh(),
            torch.nn.Linear(width, config["_n_outputs"]),
        )

    diabetes = load_data("diabetes", seed=0)
    regress = make_torch_trainable(tanh_net, task="regression", data=diabetes, epochs=3, lr=1e-2)
    reg = _tune_one(regress, diabetes, {"width": 16}, storage, "diabetes")
    return {"digits": (digits, clf), "diabetes": (diabetes, reg)}


@pytest.fixture(scope="module")
def fresh(
    trained: dict[str, tuple[Dataset, Any]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    jobs = {name: (result, data.X_val) for name, (data, result) in trained.items()}
    return _predict_in_fresh_process(jobs, tmp_path_factory.mktemp("fresh"))


@pytest.mark.slow
def test_classifier_reproduces_reported_accuracy_in_a_fresh_process(
    trained: dict[str, tuple[Dataset, Any]], fresh: dict[str, dict[str, Any]]
) -> None:
    data, result = trained["digits"]
    out = fresh["digits"]
    assert out["info"]["training"] is False
    assert out["info"]["device"] == "cpu"
    assert out["info"]["test_module_loaded"] is False
    reported = result.metrics["val_accuracy"]
    assert result.metrics["epoch"] == 3
    predicted = out["predict"]
    assert predicted.dtype == data.y_val.dtype  # the original labels, not indices
    accuracy = float(np.mean(predicted == data.y_val))
    assert accuracy == reported
    assert reported > 0.8
    # The weights alone on raw features score far lower: the standardization matters, so the
    # equality above is not a coincidence of an identity preprocessing.
    bare_accuracy = float(np.mean(data.classes[out["bare"].argmax(axis=1)] == data.y_val))
    assert bare_accuracy < reported - 0.1
    proba = out["proba"]
    assert proba.shape == (data.X_val.shape[0], 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(data.classes[proba.argmax(axis=1)], predicted)
    np.testing.assert_array_equal(out["forward"].argmax(axis=1), proba.argmax(axis=1))


@pytest.mark.slow
def test_regressor_reproduces_reported_r2_and_loss_in_a_fresh_process(
    trained: dict[str, tuple[Dataset, Any]], fresh: dict[str, dict[str, Any]]
) -> None:
    data, result = trained["diabetes"]
    out = fresh["diabetes"]
    predicted = out["predict"]
    assert predicted.shape == data.y_val.shape
    np.testing.assert_array_equal(out["forward"], predicted)
    # Predictions are in the target's units (diabetes progression, ~25..346), not standardized.
    assert 50 < predicted.mean() < 250
    r2 = r2_score(data.y_val, predicted)
    assert r2 == pytest.approx(result.metrics["val_r2"], rel=1e-9)
    assert r2 > 0.0
    # val_loss is the float32 MSE on the standardized target, as the trainable computes it.
    y_mean, y_scale = out["info"]["y_mean"], out["info"]["y_scale"]
    assert y_mean == pytest.approx(float(np.mean(data.y_train)), rel=1e-12)
    standardized = torch.as_tensor((predicted - y_mean) / y_scale, dtype=torch.float32)
    target = torch.as_tensor((data.y_val - y_mean) / y_scale, dtype=torch.float32)
    val_loss = float(torch.nn.functional.mse_loss(standardized, target))
    assert val_loss == pytest.approx(result.metrics["val_loss"], rel=1e-9)
    bare_r2 = r2_score(data.y_val, out["bare"].ravel())
    assert bare_r2 < 0.0  # raw outputs are in standardized units: worse than the mean


@pytest.mark.slow
def test_load_model_takes_a_checkpoint_object_and_tensors(
    trained: dict[str, tuple[Dataset, Any]],
) -> None:
    data, result = trained["digits"]
    model = load_model(result.checkpoint)  # a ray.tune.Checkpoint, here in the driver
    assert isinstance(model, TorchPredictor)
    assert (model.task, model.n_features, model.epoch) == ("classification", 64, 3)
    assert model.config["hidden_size"] == 32
    X = torch.as_tensor(data.X_val, dtype=torch.float64)  # any float tensor
    with torch.no_grad():
        logits = model(X)
    assert logits.shape == (data.X_val.shape[0], 10)
    np.testing.assert_array_equal(data.classes[logits.argmax(dim=1).numpy()], model.predict(X))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 64\)"):
        model.predict(data.X_val[:, :10])
    regressor = load_model(Path(trained["diabetes"][1].checkpoint.path))  # a PathLike
    with pytest.raises(AttributeError, match="predict_proba is for classification"):
        regressor.predict_proba(trained["diabetes"][0].X_val)


@pytest.mark.slow
def test_stored_factory_kinds(trained: dict[str, tuple[Dataset, Any]]) -> None:
    specs = {}
    for name, (_, result) in trained.items():
        with open(Path(result.checkpoint.path) / MODEL_FILE, "rb") as f:
            specs[name] = pickle.load(f)
    assert specs["digits"]["import_path"] == "trainables.torch_trainable:mlp"
    assert "pickled" in specs["diabetes"]
    assert "import_path" not in specs["diabetes"]


@pytest.mark.slow
def test_unloadable_checkpoints_are_explained(
    trained: dict[str, tuple[Dataset, Any]], tmp_path: Path
) -> None:
    source = Path(trained["digits"][1].checkpoint.path)

    old = tmp_path / "version1"
    shutil.copytree(source, old)
    state = torch.load(old / CHECKPOINT_FILE, weights_only=True)
    del state["preprocessing"]
    state["version"] = 1
    torch.save(state, old / CHECKPOINT_FILE)
    (old / MODEL_FILE).unlink()
    with pytest.raises(ValueError, match="has version 1; load_model needs version 2"):
        load_model(old)

    moved = tmp_path / "moved-factory"
    shutil.copytree(source, moved)
    with open(moved / MODEL_FILE, "rb") as f:
        spec = pickle.load(f)
    spec["import_path"] = "no_such_package_xyz.models:net"
    with open(moved / MODEL_FILE, "wb") as f:
        pickle.dump(spec, f)
    with pytest.raises(ValueError, match=r"'no_such_package_xyz\.models:net'.*PYTHONPATH"):
        load_model(moved)

    with pytest.raises(ValueError, match=r"has no state\.pt"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="is not a directory"):
        load_model(tmp_path / "missing")
    with pytest.raises(TypeError, match=r"ray\.tune\.Checkpoint or the path"):
        load_model(42)  # type: ignore[arg-type]
