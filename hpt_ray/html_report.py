"""What the search did, in one HTML file: ``report_html(DIR)`` and ``hpt-ray report DIR``.

The report is one self-contained file (no network: every style and script is inline, and a
Content-Security-Policy forbids any fetch), so it opens from disk, goes by mail, or sits next to a
pull request. It is built from what an experiment directory holds:

- ``results.parquet`` (or, for a run that has not written it yet, ``trials.jsonl``): one row per
  trial with its status (see ``hpt_ray.table``), final and best metric, config columns;
- ``experiment.json``: model, data, metric, mode, searcher, scheduler, num_samples, max_t, seed;
- ``experiment.yaml`` if present (runs started by ``hpt-ray run``): the space with its domains
  and the command that reproduces the run;
- each trial's ``result.json`` (Ray writes one JSON line per report): the learning curves,
  and the timeline (node, start and end of each session of the trial);
- ``schedule.parquet`` for a population-based run (``scheduler="pbt"``/``"pb2"``,
  ``hpt_ray.pbt``): each member's perturbed hyperparameters at every report, with its exploits;
  also its learning curve (every report of its lineage, which a restarted member's ``result.json``
  can lack).

Sections: at a glance; optimization history; learning curves with the scheduler's cut points; the
hyperparameter schedule (population runs only); parameter importance; slice plots; parallel
coordinates; resource timeline; the table of all trials. Several directories make one report: their
histories overlaid, then each experiment.

Plots are SVG written here, in Python, with a few lines of vanilla JavaScript for the table
(sort, filter) and the parallel-coordinates highlight. A plotting library would have to be
inlined: Plotly's bundle alone is ~3.6 MB of the 5 MB allowed, Vega + Vega-Lite ~0.8 MB, for
charts that are points, lines and bars. Hand-written SVG costs nothing to inline, keeps a
1,000-trial report near 2 MB, renders without a script, and every number in it is computed (and
tested) in Python. Hover tooltips are SVG ``<title>`` elements.

Parameter importance (``param_importance``) is fANOVA's first-order decomposition (Hutter, Hoos
and Leyton-Brown, ICML 2014) estimated on a random forest: the forest ``f`` is fit on the
trials, each parameter's marginal ``f_j(v) = mean_k f(x_k with x_kj = v)`` is averaged over a
background sample of trials, and the variance of ``f_j`` over the parameter's observed values
is its main effect ``V_j``. Shares are ``V_j / sum(V)``; ``sum(V) / Var f`` (the part of the
variance that main effects explain, the rest being interactions) is reported next to them.

Notation: ``X: (n_trials, n_params)`` parameter encodings (log10 for log parameters, category
codes for categorical ones), ``y: (n_trials,)`` the metric.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpt_ray.objective import finite_metric
from hpt_ray.pbt import SCHEDULE_FILE
from hpt_ray.storage import (
    LOG_FILE,
    RESULTS_FILE,
    RunNotFoundError,
    is_uri,
    read_remote_file,
    remote_names,
)
from hpt_ray.table import STATUSES, best_row, read_metadata, read_results, records_to_frame
from hpt_ray.trial_log import read_log
from searchers.files import atomic_write

# Status colours: the same in every plot and in the table.
STATUS_COLORS = {
    "completed": "#1f77b4",
    "stopped": "#ff7f0e",
    "diverged": "#9467bd",
    "error": "#d62728",
    "interrupted": "#8c564b",
    "timeout": "#7f7f7f",
    "running": "#2ca02c",
    "pending": "#bcbd22",
}
# One colour per experiment when several are overlaid (matplotlib's tab10).
EXPERIMENT_COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
# Viridis, sampled: a metric colour scale that reads in grey too.
VIRIDIS = ("#440154", "#414487", "#2a788e", "#22a884", "#7ad151", "#fde725")
# Ray's result timestamps are whole seconds, so a session's start is known to within one: two
# sessions of a node that overlap by less than that may be one slot used in turn.
LANE_SLACK_S = 1.0
LOG_DOMAINS = frozenset({"loguniform", "qloguniform", "lograndint", "qlograndint"})
CHOICE_DOMAINS = frozenset({"choice", "grid_search"})


@dataclass(frozen=True)
class ReportOptions:
    """Knobs of the report, with their defaults.

    Attributes:
        importance_trees: trees of the importance forest (64: shares within ~0.03 of the
            analytic ones on tests/test_report.py's additive tables; ~0.5 s of CPU for 1,000
            trials and 8 parameters).
        importance_grid: values of a parameter at which its marginal is evaluated.
        importance_background: trials the marginal is averaged over (a random subset).
        highlight: trials drawn bold as "best" in the parallel-coordinates view.
        max_curve_points: points kept per learning curve (evenly thinned beyond).
        seed: the forest's and the subsets' seed (the same report for the same data).
    """

    importance_trees: int = 64
    importance_grid: int = 24
    importance_background: int = 192
    highlight: int = 5
    max_curve_points: int = 200
    seed: int = 0


# -- data ------------------------------------------------------------------------------------


@dataclass
class Param:
    """One searched parameter: its column, how to draw it, and its domain when known."""

    name: str
    column: str
    kind: str  # "float" | "int" | "cat"
    log: bool = False
    spec: str = ""  # the domain as written in experiment.yaml, or what the trials show
    categories: tuple[str, ...] = ()
    varies: bool = True


@dataclass
class Session:
    """A stretch of a trial on one worker: from its (re)start to its last report in it."""

    trial_id: str
    node: str
    gpus: str
    start: float  # seconds since the epoch
    end: float


@dataclass
class Experiment:
    """What one experiment directory holds, read once."""

    path: str
    name: str
    meta: dict[str, Any]
    frame: pd.DataFrame
    metric: str
    mode: str
    params: list[Param]
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # trial -> (iterations, metric)
    sessions: list[Session]
    yaml_text: str | None = None
    yaml_doc: dict[str, Any] = field(default_factory=dict)
    schedule: pd.DataFrame | None = None  # population runs: schedule.parquet (hpt_ray.pbt)

    @property
    def t0(self) -> float | None:
        return min((s.start for s in self.sessions), default=None)

    def trial_start(self) -> dict[str, float]:
        """Seconds from the experiment's first start to each trial's first start."""
        t0 = self.t0
        starts: dict[str, float] = {}
        for s in self.sessions:
            if t0 is not None and (s.trial_id not in starts or s.start - t0 < starts[s.trial_id]):
                starts[s.trial_id] = s.start - t0
        return starts


def load_experiment(directory: str | os.PathLike[str]) -> Experiment:
    """Read an experiment directory (or storage URI) into an `Experiment`.

    A running experiment gives a snapshot: its table (or its log, before the first table) and
    the reports its trials have written so far.
    """
    location = str(directory)
    remote = is_uri(location)
    if not remote and not Path(location).is_dir():
        raise RunNotFoundError(
            f"{location}: not a directory; give an experiment directory (`hpt-ray run` and "
            "tune_model print it as `results: DIR/results.parquet`)"
        )
    frame = _read_frame(location, remote=remote)
    meta = read_metadata(location)
    metric = str(meta.get("metric", "metric"))
    mode = str(meta.get("mode", "max"))
    yaml_text = _read_text(location, "experiment.yaml", remote=remote)
    yaml_doc: dict[str, Any] = {}
    if yaml_text:
        import yaml

        loaded = yaml.safe_load(yaml_text)
        yaml_doc = dict(loaded) if isinstance(loaded, Mapping) else {}
    curves, sessions = _read_histories(location, metric, remote=remote)
    schedule = _read_schedule(location, remote=remote)
    if schedule is not None:
        for trial_id, (its, values) in _schedule_curves(schedule).items():
            # The schedule's reports, and result.json's for any iteration it lacks (a schedule
            # written last a moment before a snapshot of a running experiment).
            known_its, known_values = curves.get(trial_id, (np.empty(0), np.empty(0)))
            extra = ~np.isin(known_its, its)
            its = np.concatenate([its, known_its[extra]])
            values = np.concatenate([values, known_values[extra]])
            order = np.argsort(its, kind="stable")
            curves[trial_id] = (its[order], values[order])
    name = str(meta.get("name") or location.rstrip("/").rsplit("/", 1)[-1])
    return Experiment(
        path=location,
        name=name,
        meta=meta,
        frame=frame,
        metric=metric,
        mode=mode,
        # experiment.yaml's space, else one recorded in experiment.json (same format), if any.
        params=_params(frame, yaml_doc.get("space") or meta.get("space")),
        curves=curves,
        sessions=sessions,
        yaml_text=yaml_text,
        yaml_doc=yaml_doc,
        schedule=schedule,
    )


def _schedule_curves(schedule: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A population member's curve from the schedule, which holds every report of its lineage
    (the value reported; NaN where it was missing or not finite): Ray's ``result.json`` of a
    member restarted from a copied checkpoint can lose the reports it made before (seen: a member
    that reported iteration 1, then copied a checkpoint of 6, had 7-9 only)."""
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for trial_id, rows in schedule.groupby(schedule["trial_id"].astype(str)):
        rows = rows.sort_values("iteration")
        values = pd.to_numeric(rows["metric"], errors="coerce").to_numpy(dtype=float)
        curves[str(trial_id)] = (rows["iteration"].to_numpy(dtype=float), values)
    return curves


_FRAME_COLUMNS = {
    "trial_id": "object",
    "status": "object",
    "final_metric": "float64",
    "best_metric": "float64",
    "iterations": "Int64",
    "wall_time_s": "float64",
    "error": "object",
}


def _read_frame(location: str, *, remote: bool) -> pd.DataFrame:
    if not remote and not (Path(location) / RESULTS_FILE).exists():
        if not (Path(location) / LOG_FILE).exists():
            raise RunNotFoundError(
                f"no {RESULTS_FILE} and no {LOG_FILE} in {location}: is this an hpt_ray "
                "experiment directory?"
            )
        frame = records_to_frame(list(read_log(location).values()))
    else:
        frame = read_results(location)
    for column, dtype in _FRAME_COLUMNS.items():
        if column not in frame:
            frame[column] = pd.Series([None] * len(frame), dtype=dtype)
    frame["trial_id"] = frame["trial_id"].astype(str)
    frame["final_metric"] = pd.to_numeric(frame["final_metric"], errors="coerce")
    frame["best_metric"] = pd.to_numeric(frame["best_metric"], errors="coerce")
    # NaN/inf never rank: they are bad reports, counted in the table, not scores.
    for column in ("final_metric", "best_metric"):
        frame.loc[~np.isfinite(frame[column].to_numpy(dtype=float)), column] = np.nan
    return frame.reset_index(drop=True)


def _read_schedule(location: str, *, remote: bool) -> pd.DataFrame | None:
    if remote:
        data = read_remote_file(location, SCHEDULE_FILE)
        return None if data is None else pd.read_parquet(io.BytesIO(data))
    path = Path(location) / SCHEDULE_FILE
    return pd.read_parquet(path) if path.exists() else None


def _read_text(location: str, name: str, *, remote: bool) -> str | None:
    if remote:
        data = read_remote_file(location, name)
        return None if data is None else data.decode("utf-8", errors="replace")
    path = Path(location) / name
    return path.read_text(errors="replace") if path.exists() else None


def _trial_result_texts(location: str, *, remote: bool) -> Iterable[str]:
    if remote:
        for name in sorted(remote_names(location)):
            data = read_remote_file(location, f"{name}/result.json")
            if data:
                yield data.decode("utf-8", errors="replace")
        return
    for path in sorted(Path(location).glob("*/result.json")):
        yield path.read_text(errors="replace")


def _read_histories(
    location: str, metric: str, *, remote: bool
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[Session]]:
    """Each trial's curve (iteration -> metric) and its sessions, from Ray's result.json."""
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sessions: list[Session] = []
    for text in _trial_result_texts(location, remote=remote):
        its: list[float] = []
        values: list[float] = []
        current: Session | None = None
        last_restore_it = math.inf
        trial_id = None
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a running trial, half written
            if not isinstance(row, dict) or "trial_id" not in row:
                continue
            trial_id = str(row["trial_id"])
            it = finite_metric(row.get("training_iteration"))
            value = finite_metric(row.get(metric))
            if it is not None:
                its.append(it)
                values.append(np.nan if value is None else value)
            stamp = finite_metric(row.get("timestamp"))
            since = finite_metric(row.get("time_since_restore")) or 0.0
            restore_it = finite_metric(row.get("iterations_since_restore")) or 0.0
            if stamp is None:
                continue
            # Ray's timestamp is whole seconds; time_since_restore is exact, so a session's
            # start is its first report's stamp less its time, and its end start + time.
            if current is None or restore_it <= last_restore_it - 1 or restore_it == 1:
                if current is not None:
                    sessions.append(current)
                current = Session(
                    trial_id=trial_id,
                    node=str(row.get("node_ip") or row.get("hostname") or "node"),
                    gpus=str(row.get("gpu_ids") or ""),
                    start=stamp - since,
                    end=stamp,
                )
            current.end = max(current.end, current.start + since)
            last_restore_it = restore_it
        if current is not None:
            sessions.append(current)
        if trial_id is not None and its:
            order = np.argsort(its, kind="stable")
            curves[trial_id] = (np.asarray(its)[order], np.asarray(values)[order])
    return curves, sessions


def _params(frame: pd.DataFrame, space: Any) -> list[Param]:
    """The searched parameters: kinds and log scales from experiment.yaml's space if there is
    one, else from the values (see `_looks_log`)."""
    flat_space = _flatten_space(space) if isinstance(space, Mapping) else {}
    params = []
    for column in [c for c in frame.columns if c.startswith("config/")]:
        name = column.removeprefix("config/")
        values = frame[column]
        entry = flat_space.get(name)
        domain = next(iter(entry)) if isinstance(entry, Mapping) and len(entry) == 1 else None
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if domain in CHOICE_DOMAINS or isinstance(entry, list) or not numeric:
            kind = "cat"
        elif pd.api.types.is_integer_dtype(values) or (domain or "").endswith("randint"):
            kind = "int"
        else:
            kind = "float"
        if kind == "cat":
            labels = [_label(v) for v in values]
            observed = sorted(set(labels), key=_category_key)
            # The space's order first (all of its choices: an unexplored one shows as empty).
            listed = entry if isinstance(entry, list) else _choice_values(entry)
            categories = tuple(dict.fromkeys([*(_label(v) for v in listed), *observed]))
            param = Param(name, column, "cat", categories=categories)
            param.varies = len(observed) > 1
        else:
            x = values.to_numpy(dtype=float)
            finite = x[np.isfinite(x)]
            positive = finite.size > 0 and finite.min() > 0
            log = domain in LOG_DOMAINS if domain is not None else _looks_log(finite)
            param = Param(name, column, kind, log=log and bool(positive))
            param.varies = bool(finite.size > 1 and finite.min() < finite.max())
        if entry is not None:
            param.spec = _spec_text(entry)
        elif not param.varies:
            param.spec = f"constant {_label(values.iloc[0])}" if len(values) else "constant"
        elif param.kind == "cat":
            param.spec = "choice of " + ", ".join(param.categories) + " (as observed)"
        else:
            x = values.to_numpy(dtype=float)
            finite = x[np.isfinite(x)]
            span = f"[{_fmt(finite.min())}, {_fmt(finite.max())}]" if finite.size else "[]"
            scale = ", log" if param.log else ""
            param.spec = f"{param.kind} in {span}{scale} (as observed)"
        params.append(param)
    return params


def _choice_values(entry: Any) -> list[Any]:
    if isinstance(entry, Mapping) and len(entry) == 1:
        domain, args = next(iter(entry.items()))
        if domain in CHOICE_DOMAINS and isinstance(args, list):
            return args
    return []


def _looks_log(x: np.ndarray) -> bool:
    """Without the space (a run from Python): positive values spanning 1.5 decades or more
    that are spread more evenly in log10 than in linear scale (Kolmogorov-Smirnov distance to
    a uniform law on their range). A uniform dropout in [0, 0.5] spans decades too, but its
    values crowd the top decade, so it stays linear (with a dozen trials or more; a few
    trials may fool it: experiment.yaml's space, when there is one, decides instead)."""
    if x.size < 3 or x.min() <= 0 or x.max() / x.min() < 30:
        return False
    return _ks_uniform(np.log10(x)) < _ks_uniform(x)


def _ks_uniform(v: np.ndarray) -> float:
    u = np.sort((v - v.min()) / (v.max() - v.min()))  # (n,) in [0, 1]
    n = len(u)
    return float(np.max(np.abs(u - (np.arange(n) + 0.5) / n)))


def _flatten_space(space: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """experiment.yaml's space -> {"a/b": entry}; a one-key mapping naming a domain is a leaf."""
    flat: dict[str, Any] = {}
    for key, value in space.items():
        name = f"{prefix}{key}"
        is_domain = (
            isinstance(value, Mapping)
            and len(value) == 1
            and (
                str(next(iter(value))) in {*LOG_DOMAINS, *CHOICE_DOMAINS}
                or str(next(iter(value))).endswith(("uniform", "randint"))
            )
        )
        if isinstance(value, Mapping) and not is_domain:
            flat.update(_flatten_space(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def _spec_text(entry: Any) -> str:
    if isinstance(entry, Mapping) and len(entry) == 1:
        domain, args = next(iter(entry.items()))
        args = args if isinstance(args, list) else [args]
        return f"{domain}({', '.join(_label(a) for a in args)})"
    if isinstance(entry, list):
        return f"choice({', '.join(_label(a) for a in entry)})"
    return f"constant {_label(entry)}"


def _label(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"
    if isinstance(value, float):
        return _fmt(value)
    return str(value)


def _category_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


# -- statistics ------------------------------------------------------------------------------


def encode(frame: pd.DataFrame, params: Sequence[Param]) -> np.ndarray:
    """The trials' parameters as numbers: ``X: (n_trials, n_params)``; log10 for log params,
    category codes for categorical ones, a missing value as the column's median."""
    columns = []
    for p in params:
        if p.kind == "cat":
            codes = {c: i for i, c in enumerate(p.categories)}
            col = np.array([codes.get(_label(v), -1) for v in frame[p.column]], dtype=float)
        else:
            col = frame[p.column].to_numpy(dtype=float)
            if p.log:
                with np.errstate(divide="ignore", invalid="ignore"):
                    col = np.log10(col)
        bad = ~np.isfinite(col)
        if bad.any():
            col[bad] = np.median(col[~bad]) if (~bad).any() else 0.0
        columns.append(col)
    return np.column_stack(columns) if columns else np.zeros((len(frame), 0))  # (n, p)


def param_importance(
    X: np.ndarray, y: np.ndarray, *, options: ReportOptions | None = None
) -> tuple[np.ndarray, float]:
    """First-order variance shares of each column of ``X`` (fANOVA on a random forest; see the
    module docstring). Returns ``(shares: (n_params,), explained)``: shares sum to 1 (all zero
    when the forest's prediction does not vary), and ``explained`` is the part of the forest's
    variance the main effects account for (1 for an additive function; less with interactions).
    """
    from sklearn.ensemble import RandomForestRegressor

    options = options or ReportOptions()
    X = np.asarray(X, dtype=float)  # (n, p)
    y = np.asarray(y, dtype=float)  # (n,)
    n, p = X.shape
    if p == 0 or n < 2:
        return np.zeros(p), 0.0
    rng = np.random.default_rng(options.seed)
    forest = RandomForestRegressor(
        n_estimators=options.importance_trees,
        # Leaves of two: smoother marginals than fully grown trees, and 20% less CPU.
        min_samples_leaf=2,
        random_state=options.seed,
        n_jobs=1,
    ).fit(X, y)
    total = float(np.var(forest.predict(X)))
    if total <= 1e-12 * max(1.0, float(np.var(y))):
        return np.zeros(p), 0.0
    m = min(n, options.importance_background)
    background = X[rng.choice(n, size=m, replace=False)]  # (m, p)
    effects = np.zeros(p)
    grids = []
    for j in range(p):
        values, weights = _grid(X[:, j], options.importance_grid)  # (g,), (g,)
        grids.append((values, weights))
    # One predict call for all parameters: (sum_j g_j * m, p) rows.
    blocks = []
    for j, (values, _) in enumerate(grids):
        block = np.repeat(background[None, :, :], len(values), axis=0)  # (g, m, p)
        block[:, :, j] = values[:, None]
        blocks.append(block.reshape(-1, p))
    predictions = forest.predict(np.concatenate(blocks))
    offset = 0
    for j, (values, weights) in enumerate(grids):
        g = len(values)
        marginal = predictions[offset : offset + g * m].reshape(g, m).mean(axis=1)  # (g,)
        offset += g * m
        mean = float(np.dot(weights, marginal))
        effects[j] = float(np.dot(weights, (marginal - mean) ** 2))
    summed = float(effects.sum())
    if summed <= 0:
        return np.zeros(p), 0.0
    return effects / summed, min(1.0, summed / total)


def _grid(column: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Values of a parameter and their weights: its distinct values with their frequencies
    when there are few, else ``size`` equally weighted quantiles."""
    values, counts = np.unique(column, return_counts=True)
    if len(values) <= size:
        return values.astype(float), counts / counts.sum()
    quantiles = np.quantile(column, (np.arange(size) + 0.5) / size)
    return quantiles, np.full(size, 1.0 / size)


@dataclass
class Importance:
    names: list[str]
    shares: np.ndarray
    explained: float
    n_trials: int
    basis: str  # which trials it was computed on, in words
    seconds: float
    note: str = ""


def experiment_importance(exp: Experiment, options: ReportOptions | None = None) -> Importance:
    """Importance of the varying parameters on the trials that reached the end (at least 8 of
    them), else on every trial with a finite metric: a stopped trial's score is at a lower
    fidelity, so it is used only when too few trials completed."""
    started = time.perf_counter()
    params = [p for p in exp.params if p.varies]
    frame = exp.frame[exp.frame["final_metric"].notna()]
    completed = frame[frame["status"] == "completed"]
    if len(completed) >= 8:
        frame, basis = completed, "completed trials"
    else:
        basis = "all trials with a finite metric"
    if not params:
        return Importance([], np.zeros(0), 0.0, len(frame), basis, 0.0, "no parameter varies")
    if len(frame) < 3:
        return Importance(
            [p.name for p in params],
            np.zeros(len(params)),
            0.0,
            len(frame),
            basis,
            0.0,
            f"needs at least 3 trials with a finite {exp.metric}; there are {len(frame)}",
        )
    shares, explained = param_importance(
        encode(frame, params), frame["final_metric"].to_numpy(dtype=float), options=options
    )
    note = "" if shares.sum() > 0 else f"{exp.metric} does not vary with the parameters"
    return Importance(
        [p.name for p in params],
        shares,
        explained,
        len(frame),
        basis,
        time.perf_counter() - started,
        note,
    )


def best_so_far(values: np.ndarray, mode: str) -> np.ndarray:
    """Running best of ``values: (n,)`` in order, NaN until the first finite value."""
    out = np.full(len(values), np.nan)
    best = np.nan
    for i, v in enumerate(values):
        if np.isfinite(v) and (np.isnan(best) or (v > best if mode == "max" else v < best)):
            best = v
        out[i] = best
    return out


def cut_points(exp: Experiment) -> list[int]:
    """Iterations at which the scheduler stopped trials (ASHA's rungs, as the run shows them)."""
    stopped = exp.frame[exp.frame["status"] == "stopped"]
    return sorted({int(i) for i in stopped["iterations"].dropna() if int(i) > 0})


def lanes(sessions: Sequence[Session]) -> list[tuple[str, int, Session]]:
    """Each session's node and lane: sessions of a node that overlap get different lanes, so
    the lanes of a node are its busy slots and a gap is idle capacity."""
    out: list[tuple[str, int, Session]] = []
    by_node: dict[str, list[Session]] = {}
    for s in sessions:
        by_node.setdefault(s.node, []).append(s)
    for node in sorted(by_node):
        ends: list[float] = []
        for s in sorted(by_node[node], key=lambda s: (s.start, s.end)):
            lane = next((i for i, end in enumerate(ends) if end <= s.start + LANE_SLACK_S), None)
            if lane is None:
                lane = len(ends)
                ends.append(s.end)
            else:
                ends[lane] = s.end
            out.append((node, lane, s))
    return out


# -- SVG -------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if finite_metric(value) is None:
        return "–"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}"


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Scale:
    """Data -> pixels for one axis: linear, log10 or categorical."""

    kind: str
    lo: float
    hi: float
    a: float  # pixel of lo
    b: float  # pixel of hi
    categories: tuple[str, ...] = ()

    @classmethod
    def fit(
        cls, values: Iterable[float], a: float, b: float, *, log: bool = False, pad: float = 0.05
    ) -> Scale:
        x = np.asarray([v for v in values if v is not None], dtype=float)
        x = x[np.isfinite(x)]
        if log:
            x = np.log10(x[x > 0])
        if x.size == 0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = float(x.min()), float(x.max())
            # Hostile metrics (a diverged loss of 1e30) would flatten everything else: the axis
            # covers the central 96% when the extremes are far out; points beyond sit at the edge.
            if x.size >= 10:
                q_lo, q_hi = np.quantile(x, [0.02, 0.98])
                if hi - lo > 10 * max(q_hi - q_lo, 1e-12):
                    lo, hi = float(q_lo), float(q_hi)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5 * max(abs(lo), 1.0) * 0.1, hi + 0.5 * max(abs(hi), 1.0) * 0.1
        span = hi - lo
        return cls("log" if log else "linear", lo - pad * span, hi + pad * span, a, b)

    @classmethod
    def categorical(cls, categories: Sequence[str], a: float, b: float) -> Scale:
        return cls("cat", -0.5, len(categories) - 0.5, a, b, tuple(categories))

    def __call__(self, value: Any) -> float:
        if self.kind == "cat":
            try:
                v = float(self.categories.index(_label(value)))
            except ValueError:
                v = -0.5
        else:
            v = float(value)
            if self.kind == "log":
                v = math.log10(v) if v > 0 else self.lo
        v = min(max(v, self.lo), self.hi)
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self) -> list[tuple[float, str]]:
        if self.kind == "cat":
            return [(self(c), c) for c in self.categories]
        if self.kind == "log":
            first, last = math.ceil(self.lo), math.floor(self.hi)
            powers = list(range(first, last + 1))
            values = [10.0**k for k in powers]
            if len(powers) < 3:
                values = [
                    m * 10.0**k
                    for k in range(first - 1, last + 1)
                    for m in (1, 2, 5)
                    if self.lo <= math.log10(m * 10.0**k) <= self.hi
                ]
            return [(self(v), _fmt(v)) for v in values]
        return [(self(v), _fmt(v)) for v in _nice_ticks(self.lo, self.hi)]


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(0.0 if abs(v) < 1e-12 * step else v)
        v += step
    return ticks


class Chart:
    """One SVG plot: a frame with axes, ticks and labels around elements added in data space."""

    LEFT, RIGHT, TOP, BOTTOM = 62, 16, 28, 44

    def __init__(self, width: int, height: int, title: str, xlabel: str, ylabel: str) -> None:
        self.width, self.height = width, height
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.x0, self.x1 = self.LEFT, width - self.RIGHT
        self.y0, self.y1 = height - self.BOTTOM, self.TOP  # y0: bottom pixel
        self.items: list[str] = []
        self.xs: Scale | None = None
        self.ys: Scale | None = None

    def set_x(self, values: Iterable[float], *, log: bool = False) -> Scale:
        self.xs = Scale.fit(values, self.x0, self.x1, log=log)
        return self.xs

    def set_x_categories(self, categories: Sequence[str]) -> Scale:
        self.xs = Scale.categorical(categories, self.x0, self.x1)
        return self.xs

    def set_y(self, values: Iterable[float], *, log: bool = False) -> Scale:
        self.ys = Scale.fit(values, self.y0, self.y1, log=log)
        return self.ys

    def add(self, item: str) -> None:
        self.items.append(item)

    def svg(self, *, legend: Sequence[tuple[str, str]] = ()) -> str:
        parts = [
            f'<svg class="chart" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" '
            f'aria-label="{_esc(self.title)}" xmlns="http://www.w3.org/2000/svg">',
            f'<text class="title" x="{self.x0}" y="16">{_esc(self.title)}</text>',
        ]
        if self.xs is not None:
            for px, label in self.xs.ticks():
                parts.append(
                    f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{self.y1}" '
                    f'y2="{self.y0}"/><text class="tick" x="{px:.1f}" y="{self.y0 + 14}" '
                    f'text-anchor="middle">{_esc(label)}</text>'
                )
        if self.ys is not None:
            for py, label in self.ys.ticks():
                parts.append(
                    f'<line class="grid" x1="{self.x0}" x2="{self.x1}" y1="{py:.1f}" '
                    f'y2="{py:.1f}"/><text class="tick" x="{self.x0 - 4}" y="{py + 4:.1f}" '
                    f'text-anchor="end">{_esc(label)}</text>'
                )
        parts.append(
            f'<rect class="frame" x="{self.x0}" y="{self.y1}" width="{self.x1 - self.x0}" '
            f'height="{self.y0 - self.y1}"/>'
        )
        parts.extend(self.items)
        parts.append(
            f'<text class="label" x="{(self.x0 + self.x1) / 2:.0f}" y="{self.height - 8}" '
            f'text-anchor="middle">{_esc(self.xlabel)}</text>'
            f'<text class="label" transform="translate(14 {(self.y0 + self.y1) / 2:.0f}) '
            f'rotate(-90)" text-anchor="middle">{_esc(self.ylabel)}</text>'
        )
        x = self.x1
        for color, label in reversed(legend):
            x -= 8 * len(label) + 22
            parts.append(
                f'<rect x="{x}" y="7" width="10" height="10" fill="{color}"/>'
                f'<text class="tick" x="{x + 13}" y="16">{_esc(label)}</text>'
            )
        parts.append("</svg>")
        return "".join(parts)


def _status_legend(statuses: Iterable[str]) -> list[tuple[str, str]]:
    present = set(statuses)
    return [(STATUS_COLORS[s], s) for s in STATUSES if s in present]


def _marker(x: float, y: float, status: str, tip: str, *, r: float = 3.5) -> str:
    color = STATUS_COLORS.get(status, "#333")
    tip_el = f"<title>{_esc(tip)}</title>"
    if status == "stopped":
        return (
            f'<path d="M{x:.1f},{y - r:.1f}L{x + r:.1f},{y + r:.1f}L{x - r:.1f},{y + r:.1f}Z" '
            f'fill="{color}" fill-opacity="0.8">{tip_el}</path>'
        )
    if status in ("error", "diverged"):
        return (
            f'<path d="M{x - r:.1f},{y - r:.1f}L{x + r:.1f},{y + r:.1f}M{x - r:.1f},{y + r:.1f}'
            f'L{x + r:.1f},{y - r:.1f}" stroke="{color}" stroke-width="2">{tip_el}</path>'
        )
    return (
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}" fill-opacity="0.8">'
        f"{tip_el}</circle>"
    )


def _viridis(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    f = t - i
    a = [int(VIRIDIS[i][k : k + 2], 16) for k in (1, 3, 5)]
    b = [int(VIRIDIS[i + 1][k : k + 2], 16) for k in (1, 3, 5)]
    return "#" + "".join(f"{round(u + (v - u) * f):02x}" for u, v in zip(a, b, strict=True))


def _polyline(points: Sequence[tuple[float, float]], attrs: str) -> str:
    return (
        '<polyline points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        + f'" fill="none" {attrs}/>'
    )


def _tip(exp: Experiment, row: pd.Series) -> str:
    config = ", ".join(f"{p.name}={_label(row[p.column])}" for p in exp.params if p.varies)
    return (
        f"trial {row['trial_id']} ({row['status']}): {exp.metric}="
        f"{_fmt(row['final_metric'])}; {config}"
    )


# -- sections --------------------------------------------------------------------------------


def _empty(message: str) -> str:
    return f'<p class="empty">{_esc(message)}</p>'


def _section(kind: str, index: int, title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return (
        f'<section id="{kind}-{index}" data-section="{kind}"><h2>{_esc(title)}</h2>'
        f"{note_html}{body}</section>"
    )


def glance_section(exp: Experiment, index: int) -> str:
    meta, frame = exp.meta, exp.frame
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    status_text = ", ".join(
        f'<span class="dot" style="background:{STATUS_COLORS.get(s, "#333")}"></span>'
        f"{int(counts[s])} {_esc(s)}"
        for s in [*STATUSES, *sorted(set(counts) - set(STATUSES))]
        if s in counts
    )
    best = best_row(frame, exp.mode) if len(frame) else None
    starts = [s.start for s in exp.sessions]
    ends = [s.end for s in exp.sessions]
    wall = f"{max(ends) - min(starts):.1f} s (first trial start to last report)" if starts else "–"
    busy = sum(s.end - s.start for s in exp.sessions)
    nodes = sorted({s.node for s in exp.sessions})
    doc = exp.yaml_doc
    budget = [f"num_samples {meta.get('num_samples', doc.get('num_samples', '–'))}"]
    if meta.get("max_t") is not None:
        budget.append(f"max_t {meta['max_t']} reports per trial")
    if doc.get("time_budget_s") is not None:
        budget.append(f"time budget {doc['time_budget_s']} s")
    if doc.get("max_concurrent") is not None:
        budget.append(f"max_concurrent {doc['max_concurrent']}")
    resources = doc.get("resources_per_trial")
    scheduler = str(meta.get("scheduler", doc.get("scheduler", "–")))
    if doc.get("scheduler_options"):
        scheduler += " " + json.dumps(doc["scheduler_options"])
    searcher = str(meta.get("searcher", doc.get("searcher", "–")))
    if doc.get("searcher_options"):
        searcher += " " + json.dumps(doc["searcher_options"])
    space_rows = "".join(
        f"<tr><td>{_esc(p.name)}</td><td>{_esc(p.spec)}</td></tr>" for p in exp.params
    )
    rows = [
        ("model", f"{meta.get('model', doc.get('model', '–'))} ({meta.get('kind', '?')})"),
        ("data", meta.get("data", doc.get("data", "–"))),
        ("objective", f"{exp.metric} ({exp.mode})"),
        ("searcher", searcher),
        ("scheduler", scheduler),
        ("budget", ", ".join(budget)),
        (
            "resources",
            (f"{json.dumps(resources)} per trial; " if resources else "")
            + f"{len(nodes)} node(s) seen; {busy:.1f} s of trial time",
        ),
        ("wall time", wall),
        ("seed", meta.get("seed", doc.get("seed", "–"))),
        ("location", exp.path),
    ]
    table = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    table += f"<tr><th>trials</th><td>{len(frame)}: {status_text or 'none yet'}</td></tr>"
    if best is not None:
        best_config = {p.name: _label(best[p.column]) for p in exp.params}
        best_html = (
            f'<p class="best">Best {_esc(exp.metric)}: <b>{_fmt(best["final_metric"])}</b> '
            f"(trial {_esc(best['trial_id'])}, {_esc(best['status'])})</p>"
            f"<pre>{_esc(json.dumps(best_config, indent=1))}</pre>"
        )
    else:
        best_html = _empty(
            f"No trial has reported a finite {exp.metric} yet: there is no best config."
        )
    return _section(
        "glance",
        index,
        f"{exp.name}: at a glance",
        f'<div class="cols"><div><table class="kv">{table}</table>{best_html}</div>'
        f'<div><h3>Space</h3><table class="kv">{space_rows or "<tr><td>none</td></tr>"}'
        f"</table><h3>Reproduce</h3>{_reproduce(exp)}</div></div>",
    )


def _reproduce(exp: Experiment) -> str:
    if exp.yaml_text:
        return (
            f"<pre>hpt-ray run experiment.yaml   # the file below, kept in {_esc(exp.path)}"
            f"</pre><details><summary>experiment.yaml</summary><pre>{_esc(exp.yaml_text)}"
            "</pre></details>"
        )
    meta = exp.meta
    args = [
        f"data={meta.get('data')!r}",
        f"metric={exp.metric!r}",
        f"mode={exp.mode!r}",
        f"searcher={meta.get('searcher')!r}",
        f"scheduler={meta.get('scheduler')!r}",
        f"num_samples={meta.get('num_samples')!r}",
        f"seed={meta.get('seed')!r}",
    ]
    return (
        "<p>Started from Python (no experiment.yaml): the call, with the space above "
        "written as Ray Tune domains:</p>"
        f"<pre>hpt_ray.tune_model({_esc(meta.get('model'))}, space, {_esc(', '.join(args))})"
        "</pre>"
    )


def history_chart(experiments: Sequence[Experiment], *, overlay: bool) -> str:
    """Metric over trial start (seconds since the experiment's start) with the best so far;
    overlaid experiments each get their colour and their own best-so-far line."""
    chart = Chart(900, 340, "Optimization history", "trial start (s since the first trial)", "")
    points: list[tuple[Experiment, int, pd.DataFrame, np.ndarray]] = []
    for k, exp in enumerate(experiments):
        starts = exp.trial_start()
        frame = exp.frame
        x = np.array([starts.get(t, np.nan) for t in frame["trial_id"]])
        if not np.isfinite(x).any():
            x = np.arange(len(frame), dtype=float)  # no timing: trial order
        points.append((exp, k, frame, x))
    all_x = np.concatenate([p[3] for p in points]) if points else np.zeros(0)
    all_y = np.concatenate([p[2]["final_metric"].to_numpy(dtype=float) for p in points])
    if not np.isfinite(all_y).any():
        return _empty("No trial has reported a finite metric yet: nothing to plot.")
    xs = chart.set_x(all_x)
    ys = chart.set_y(all_y)
    metrics = sorted({e.metric for e in experiments})
    chart.ylabel = " / ".join(metrics)
    legend: list[tuple[str, str]] = []
    for exp, k, frame, x in points:
        y = frame["final_metric"].to_numpy(dtype=float)
        order = np.argsort(np.where(np.isfinite(x), x, np.inf), kind="stable")
        best = best_so_far(y[order], exp.mode)
        line_color = EXPERIMENT_COLORS[k % len(EXPERIMENT_COLORS)] if overlay else "#222"
        steps: list[tuple[float, float]] = []
        for xi, bi in zip(x[order], best, strict=True):
            if np.isfinite(xi) and np.isfinite(bi):
                if steps:
                    steps.append((xs(xi), steps[-1][1]))
                steps.append((xs(xi), ys(bi)))
        if steps:
            steps.append((chart.x1, steps[-1][1]))
            chart.add(
                _polyline(steps, f'stroke="{line_color}" stroke-width="2" class="best-line"')
            )
        for i in range(len(frame)):
            if not np.isfinite(x[i]):
                continue
            row = frame.iloc[i]
            status = str(row["status"])
            if np.isfinite(y[i]):
                if overlay:
                    chart.add(
                        f'<circle cx="{xs(x[i]):.1f}" cy="{ys(y[i]):.1f}" r="3" '
                        f'fill="{line_color}" fill-opacity="0.45"><title>'
                        f"{_esc(exp.name)}: {_esc(_tip(exp, row))}</title></circle>"
                    )
                else:
                    chart.add(_marker(xs(x[i]), ys(y[i]), status, _tip(exp, row)))
            else:
                # No metric (errored before a report, or only NaN): marked on the bottom edge.
                chart.add(_marker(xs(x[i]), chart.y0 - 5, "error", _tip(exp, row)))
        legend.append((line_color, f"{exp.name} best" if overlay else "best so far"))
    if not overlay:
        legend = _status_legend(experiments[0].frame["status"]) + legend
    return chart.svg(legend=legend)


def curves_chart(exp: Experiment, options: ReportOptions) -> str:
    """Each trial's metric per iteration, coloured by status; the scheduler's cut points as
    dashed verticals (where stopped trials ended), the best trial bold."""
    if not exp.curves:
        return _empty("No trial has written a report (result.json) yet: no learning curves.")
    chart = Chart(900, 360, "Learning curves", "training iteration (epoch or stage)", exp.metric)
    its = np.concatenate([c[0] for c in exp.curves.values()])
    vals = np.concatenate([c[1] for c in exp.curves.values()])
    if not np.isfinite(vals).any():
        return _empty(f"No report carries a finite {exp.metric}: no learning curves.")
    xs = chart.set_x(its)
    ys = chart.set_y(vals)
    status = dict(zip(exp.frame["trial_id"], exp.frame["status"], strict=True))
    best = best_row(exp.frame, exp.mode) if len(exp.frame) else None
    best_id = None if best is None else str(best["trial_id"])
    for cut in cut_points(exp):
        n_cut = int(((exp.frame["status"] == "stopped") & (exp.frame["iterations"] == cut)).sum())
        px = xs(cut)
        chart.add(
            f'<line class="rung" x1="{px:.1f}" x2="{px:.1f}" y1="{chart.y1}" y2="{chart.y0}">'
            f"<title>cut point at iteration {cut}: {n_cut} trial(s) stopped here</title></line>"
            f'<text class="tick rung-label" x="{px + 3:.1f}" y="{chart.y1 + 11}">'
            f"cut@{cut} ({n_cut})</text>"
        )
    ordered = sorted(exp.curves, key=lambda t: t == best_id)  # the best one drawn last
    for trial_id in ordered:
        it, val = exp.curves[trial_id]
        keep = np.isfinite(val)
        it, val = it[keep], val[keep]
        if len(it) == 0:
            continue
        if len(it) > options.max_curve_points:
            pick = np.unique(np.linspace(0, len(it) - 1, options.max_curve_points).astype(int))
            it, val = it[pick], val[pick]
        s = str(status.get(trial_id, "running"))
        color = STATUS_COLORS.get(s, "#333")
        width = 3 if trial_id == best_id else 1.2
        tip = f"<title>trial {_esc(trial_id)} ({_esc(s)}): last {_fmt(val[-1])}</title>"
        points = [(xs(a), ys(b)) for a, b in zip(it, val, strict=True)]
        if len(points) == 1:
            chart.add(_marker(*points[0], s, f"trial {trial_id} ({s}): {_fmt(val[-1])}"))
            continue
        chart.add(
            _polyline(
                points, f'stroke="{color}" stroke-width="{width}" stroke-opacity="0.75"'
            ).replace("/>", f">{tip}</polyline>")
        )
        if s == "stopped":
            chart.add(_marker(*points[-1], s, f"trial {trial_id} stopped at iteration {it[-1]:g}"))
    legend = _status_legend(status.get(t, "running") for t in exp.curves)
    return chart.svg(legend=legend)


def schedule_charts(exp: Experiment) -> str:
    """A population run's schedule: per perturbed parameter, each member's value over its
    reports as a step line (one colour per member), a diamond where it copied a donor."""
    schedule = exp.schedule
    if schedule is None or schedule.empty:
        return _empty("No schedule.parquet: not a population-based run.")
    columns = [c for c in schedule.columns if c.startswith("config/")]
    members = sorted(schedule["trial_id"].astype(str).unique())
    color = {m: EXPERIMENT_COLORS[k % len(EXPERIMENT_COLORS)] for k, m in enumerate(members)}
    params = {p.column: p for p in exp.params}
    charts = []
    for column in columns:
        name = column[len("config/") :]
        values = schedule[column]
        kinds = pd.api.types
        numeric = kinds.is_numeric_dtype(values) and not kinds.is_bool_dtype(values)
        chart = Chart(440, 240, name, "training iteration (report)", name)
        xs = chart.set_x(schedule["iteration"].to_numpy(dtype=float))
        if numeric:
            x = values.to_numpy(dtype=float)
            known = params.get(column)
            # The space's scale when the trials showed it, else how the schedule spreads.
            log = (known is not None and known.log) or _looks_log(x[np.isfinite(x)])
            ys = chart.set_y(x, log=log)
        else:
            ys = chart.ys = Scale.categorical(
                sorted({_label(v) for v in values}, key=_category_key), chart.y0, chart.y1
            )
        for member in members:
            rows = schedule[schedule["trial_id"].astype(str) == member].sort_values("iteration")
            points: list[tuple[float, float]] = []
            for _, row in rows.iterrows():
                px, py = xs(row["iteration"]), ys(row[column])
                if points:
                    points.append((px, points[-1][1]))  # held until this report, then stepped
                points.append((px, py))
                donor = row.get("exploited_from")
                if donor is not None and not pd.isna(donor):
                    chart.add(
                        f'<path d="M{px:.1f},{py - 4:.1f}l4,4l-4,4l-4,-4z" '
                        f'fill="{color[member]}"><title>trial {_esc(member)} copied '
                        f"{_esc(donor)}'s checkpoint at iteration {_esc(row['iteration'])}; "
                        f"{_esc(name)}={_esc(_label(row[column]))}</title></path>"
                    )
            tip = f"<title>trial {_esc(member)}: {_esc(name)} per report</title>"
            chart.add(
                _polyline(points, f'stroke="{color[member]}" stroke-width="1.5"').replace(
                    "/>", f">{tip}</polyline>"
                )
            )
        charts.append(chart.svg())
    exploits = int(schedule["exploited_from"].notna().sum())
    caption = (
        f'<p class="note">{len(members)} members, {exploits} exploit(s); the table is '
        f"{_esc(SCHEDULE_FILE)} (<code>hpt_ray.pbt.read_schedule</code>, "
        "<code>TuneResult.schedule</code>).</p>"
    )
    return caption + '<div class="grid">' + "".join(charts) + "</div>"


def importance_chart(imp: Importance) -> str:
    if imp.note:
        return _empty(f"Parameter importance: {imp.note}.")
    order = np.argsort(-imp.shares, kind="stable")
    height = 40 + 24 * len(order)
    width, left = 900, 190
    bars = []
    for row, j in enumerate(order):
        y = 20 + 24 * row
        w = imp.shares[j] * (width - left - 80)
        bars.append(
            f'<text class="tick" x="{left - 6}" y="{y + 14}" text-anchor="end">'
            f"{_esc(imp.names[j])}</text>"
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="18" fill="#1f77b4">'
            f"<title>{_esc(imp.names[j])}: {imp.shares[j]:.3f}</title></rect>"
            f'<text class="tick" x="{left + w + 5:.1f}" y="{y + 14}">{imp.shares[j]:.1%}</text>'
        )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="parameter importance" xmlns="http://www.w3.org/2000/svg">'
        + "".join(bars)
        + "</svg>"
    )


def slice_charts(exp: Experiment) -> str:
    """The metric against each varying parameter: log axes for log parameters, categories as
    jittered strips."""
    params = [p for p in exp.params if p.varies]
    frame = exp.frame
    y = frame["final_metric"].to_numpy(dtype=float)
    if not params:
        return _empty("No parameter varies across the trials: no slices to plot.")
    if not np.isfinite(y).any():
        return _empty("No trial has reported a finite metric yet: no slices to plot.")
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.25, 0.25, size=len(frame))
    charts = []
    for p in params:
        chart = Chart(440, 260, p.name, f"{p.name}{' (log)' if p.log else ''}", exp.metric)
        if p.kind == "cat":
            xs = chart.set_x_categories(p.categories)
        else:
            xs = chart.set_x(frame[p.column].to_numpy(dtype=float), log=p.log)
        ys = chart.set_y(y)
        step = (chart.x1 - chart.x0) / max(len(p.categories), 1)
        for i in range(len(frame)):
            if not np.isfinite(y[i]):
                continue
            value = frame[p.column].iloc[i]
            if p.kind != "cat" and not (
                finite_metric(value) is not None and (not p.log or float(value) > 0)
            ):
                continue
            px = xs(value) + (jitter[i] * step if p.kind == "cat" else 0.0)
            row = frame.iloc[i]
            chart.add(_marker(px, ys(y[i]), str(row["status"]), _tip(exp, row), r=3))
        charts.append(chart.svg())
    return '<div class="grid">' + "".join(charts) + "</div>"


def parallel_chart(exp: Experiment, options: ReportOptions, index: int = 0) -> str:
    """One polyline per trial across the varying parameters and the metric; the best
    ``highlight`` trials bold (a slider changes how many), colour by metric."""
    params = [p for p in exp.params if p.varies]
    frame = exp.frame
    y = frame["final_metric"].to_numpy(dtype=float)
    if not params:
        return _empty("No parameter varies across the trials: no parallel coordinates.")
    if not np.isfinite(y).any():
        return _empty("No trial has reported a finite metric yet: no parallel coordinates.")
    n_axes = len(params) + 1
    width, height, top, bottom = max(900, 110 * n_axes), 360, 34, 320
    xs = np.linspace(70, width - 70, n_axes)
    scales: list[Scale] = []
    for p in params:
        if p.kind == "cat":
            scales.append(Scale.categorical(p.categories, bottom, top))
        else:
            scales.append(Scale.fit(frame[p.column].to_numpy(dtype=float), bottom, top, log=p.log))
    metric_scale = Scale.fit(y, bottom, top)
    finite = np.isfinite(y)
    order = np.argsort(-y if exp.mode == "max" else y, kind="stable")
    rank = np.full(len(frame), len(frame) + 1)
    rank[order[finite[order]]] = np.arange(1, int(finite.sum()) + 1)
    lo, hi = np.nanmin(y), np.nanmax(y)
    n_finite = int(finite.sum())
    # The best tenth, at most `highlight`, at least one: "best" must stay a few lines.
    k_best = max(1, min(options.highlight, math.ceil(0.1 * n_finite)))
    lines = []
    for i in np.argsort(-rank, kind="stable"):  # best drawn last, on top
        row = frame.iloc[i]
        points = []
        for k, (p, s) in enumerate(zip(params, scales, strict=True)):
            value = row[p.column]
            if p.kind != "cat" and finite_metric(value) is None:
                continue
            points.append((xs[k], s(value)))
        if finite[i]:
            points.append((xs[-1], metric_scale(y[i])))
            t = (y[i] - lo) / (hi - lo) if hi > lo else 1.0
            color = _viridis(t if exp.mode == "max" else 1 - t)
        else:
            color = STATUS_COLORS["error"]
        lines.append(
            _polyline(
                points,
                f'class="pc{" hi" if rank[i] <= k_best else ""}" '
                f'data-rank="{rank[i]}" stroke="{color}"',
            ).replace("/>", f"><title>#{rank[i]} {_esc(_tip(exp, row))}</title></polyline>")
        )
    axes = []
    for k, (name, s) in enumerate(
        [
            *(
                (p.name + (" (log)" if p.log else ""), s)
                for p, s in zip(params, scales, strict=True)
            ),
            (exp.metric, metric_scale),
        ]
    ):
        x = xs[k]
        ticks = "".join(
            f'<text class="tick" x="{x - 5:.1f}" y="{py + 4:.1f}" text-anchor="end">'
            f"{_esc(label)}</text>"
            for py, label in s.ticks()
        )
        axes.append(
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>{ticks}'
            f'<text class="label" x="{x:.1f}" y="{top - 12}" text-anchor="middle">'
            f"{_esc(name)}</text>"
        )
    control = (
        f'<label class="control">highlight the best <input type="range" min="0" '
        f'max="{n_finite}" value="{k_best}" class="pc-range" '
        f'data-target="pc-{index}"> <output>{k_best}</output> '
        "trial(s)</label>"
    )
    return (
        control + f'<svg id="pc-{index}" class="chart parallel" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="parallel coordinates" '
        'xmlns="http://www.w3.org/2000/svg">' + "".join(lines) + "".join(axes) + "</svg>"
    )


def timeline_chart(exp: Experiment) -> str:
    """Trials as bars over time, one row per busy slot of each node (GPU ids in the tip)."""
    if not exp.sessions:
        return _empty("No trial has written a report (result.json) yet: no timeline.")
    placed = lanes(exp.sessions)
    rows = sorted({(node, lane) for node, lane, _ in placed})
    row_index = {r: i for i, r in enumerate(rows)}
    t0 = min(s.start for s in exp.sessions)
    height = 70 + 18 * len(rows)
    chart = Chart(900, height, "Resource timeline", "seconds since the first trial start", "")
    chart.LEFT = 150
    chart.x0 = 150
    chart.xs = Scale.fit(
        [0.0, max(s.end for s in exp.sessions) - t0], chart.x0, chart.x1, pad=0.01
    )
    chart.ys = None
    status = dict(zip(exp.frame["trial_id"], exp.frame["status"], strict=True))
    xs = chart.xs
    for node, lane, s in placed:
        i = row_index[(node, lane)]
        y = chart.y1 + 4 + 18 * i
        x_a, x_b = xs(s.start - t0), xs(s.end - t0)
        st = str(status.get(s.trial_id, "running"))
        gpus = f", GPU {s.gpus}" if s.gpus else ""
        chart.add(
            f'<rect x="{x_a:.1f}" y="{y}" width="{max(x_b - x_a, 1.0):.1f}" height="14" '
            f'fill="{STATUS_COLORS.get(st, "#333")}" fill-opacity="0.85"><title>trial '
            f"{_esc(s.trial_id)} ({_esc(st)}) on {_esc(node)}{_esc(gpus)}: "
            f"{s.start - t0:.1f}-{s.end - t0:.1f} s</title></rect>"
        )
    for (node, lane), i in row_index.items():
        y = chart.y1 + 4 + 18 * i
        chart.add(
            f'<text class="tick" x="{chart.x0 - 5}" y="{y + 11}" text-anchor="end">'
            f"{_esc(node)} slot {lane + 1}</text>"
        )
    chart.y0 = chart.y1 + 8 + 18 * len(rows)
    busy = sum(s.end - s.start for s in exp.sessions)
    span = max(s.end for s in exp.sessions) - t0
    usage = busy / (span * len(rows)) if span > 0 and rows else 1.0
    legend = _status_legend(status.get(s.trial_id, "running") for s in exp.sessions)
    return chart.svg(legend=legend) + (
        f'<p class="note">{len(rows)} slot(s) on {len({r[0] for r in rows})} node(s) busy '
        f"{usage:.0%} of the wall time; gaps are idle capacity (or the driver between trials)."
        "</p>"
    )


def trials_table(exp: Experiment) -> str:
    frame = exp.frame
    if frame.empty:
        return _empty("No trials yet.")
    finite = frame["final_metric"].notna()
    order = frame.assign(_m=~finite).sort_values(
        ["_m", "final_metric"], ascending=[True, exp.mode == "min"], kind="stable"
    )
    headers = [
        "rank",
        "trial",
        "status",
        exp.metric,
        f"best {exp.metric}",
        "iters",
        "time_s",
        *[p.name for p in exp.params],
        "error",
    ]
    head = "".join(f'<th data-col="{i}">{_esc(h)}</th>' for i, h in enumerate(headers))
    body = []
    for rank, (_, row) in enumerate(order.iterrows(), start=1):
        cells: list[tuple[Any, str]] = [
            (rank, str(rank)),
            (row["trial_id"], str(row["trial_id"])),
            (row["status"], str(row["status"])),
            (row["final_metric"], _fmt(row["final_metric"])),
            (row["best_metric"], _fmt(row["best_metric"])),
            (row["iterations"], "" if pd.isna(row["iterations"]) else str(row["iterations"])),
            (row["wall_time_s"], _fmt(row["wall_time_s"])),
            *[(row[p.column], _label(row[p.column])) for p in exp.params],
            (row["error"], "" if row["error"] is None or pd.isna(row["error"]) else row["error"]),
        ]
        tds = []
        for value, text in cells:
            number = finite_metric(value) if not isinstance(value, str) else None
            sort_key = "" if number is None else f' data-v="{number!r}"'
            tds.append(f"<td{sort_key}>{_esc(text)}</td>")
        body.append(f'<tr data-status="{_esc(row["status"])}">{"".join(tds)}</tr>')
    statuses = "".join(
        f'<option value="{s}">{s}</option>' for s in STATUSES if s in set(frame["status"])
    )
    return (
        '<div class="controls"><input type="search" class="filter" placeholder="filter rows '
        '(any text)"> <select class="status-filter"><option value="">all statuses</option>'
        f'{statuses}</select> <span class="count"></span></div>'
        f'<div class="scroll"><table class="trials"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1240px;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:8px 0 4px}section{margin:22px 0}
.cols{display:flex;gap:24px;flex-wrap:wrap}.cols>div{flex:1;min-width:360px}
table.kv th{text-align:left;padding-right:12px;vertical-align:top;color:#555}
table.kv td{font-family:ui-monospace,monospace;font-size:13px}
pre{white-space:pre-wrap;background:#f6f6f6;padding:8px;overflow:auto;font-size:12px;max-height:360px}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin:0 3px 0 8px}
.chart{max-width:100%;height:auto;display:block}.chart .title{font-weight:600;font-size:13px}
.chart .tick{font-size:10px;fill:#444}.chart .label{font-size:11px;fill:#222}
.chart .grid{stroke:#eee}.chart .frame{fill:none;stroke:#999}.chart .axis{stroke:#666}
.chart .rung{stroke:#ff7f0e;stroke-dasharray:4 3}.rung-label{fill:#b35a00}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.parallel .pc{stroke-width:1;stroke-opacity:.35}.parallel .pc.hi{stroke-width:3.5;
stroke-opacity:1;stroke:#d62728}.parallel .pc:hover{stroke-width:4;stroke-opacity:1}
.scroll{overflow:auto;max-height:520px}table.trials{border-collapse:collapse;font-size:12px}
table.trials th{position:sticky;top:0;background:#eee;cursor:pointer;padding:3px 6px;
white-space:nowrap}table.trials th.asc:after{content:" ▲"}table.trials th.desc:after{content:" ▼"}
table.trials td{padding:2px 6px;border-bottom:1px solid #eee;white-space:nowrap}
table.trials tr[data-status=error] td,table.trials tr[data-status=diverged] td{color:#b00}
.empty{color:#777;font-style:italic}.note{color:#555;font-size:12px}
#js-errors{color:#b00}.control{font-size:12px}nav a{margin-right:10px}
"""

# Sorting and filtering of the trials tables, the parallel-coordinates slider, and a catch for
# script errors (written into the page, where a headless browser's DOM dump shows them).
SCRIPT = r"""
window.onerror=function(m,s,l){var e=document.getElementById('js-errors');
e.textContent+=m+' (line '+l+')\n';};
document.querySelectorAll('table.trials:not(.compare)').forEach(function(t){
 var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
 var box=t.closest('section'),f=box.querySelector('.filter'),
 sel=box.querySelector('.status-filter'),cnt=box.querySelector('.count');
 function apply(){var q=f.value.toLowerCase(),s=sel.value,n=0;rows.forEach(function(r){
  var ok=(!s||r.dataset.status===s)&&(!q||r.textContent.toLowerCase().indexOf(q)>=0);
  r.style.display=ok?'':'none';if(ok)n++;});cnt.textContent=n+' of '+rows.length+' trials';}
 f.addEventListener('input',apply);sel.addEventListener('change',apply);apply();
 t.querySelectorAll('th').forEach(function(th){th.addEventListener('click',function(){
  var c=+th.dataset.col,asc=!th.classList.contains('asc');
  t.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
  th.classList.add(asc?'asc':'desc');
  function key(r){var d=r.cells[c];return d.dataset.v!==undefined?+d.dataset.v:d.textContent;}
  rows.sort(function(a,b){var x=key(a),y=key(b);if(x===y)return 0;
   if(typeof x!==typeof y)return (typeof x==='number'?-1:1);return (x<y?-1:1)*(asc?1:-1);});
  rows.forEach(function(r){body.appendChild(r);});});});
});
document.querySelectorAll('.pc-range').forEach(function(r){
 var svg=document.getElementById(r.dataset.target),out=r.nextElementSibling;
 function apply(){var k=+r.value;out.textContent=k;svg.querySelectorAll('.pc').forEach(
  function(p){p.classList.toggle('hi',+p.dataset.rank<=k);});}
 r.addEventListener('input',apply);apply();});
document.body.dataset.ready='1';
"""

# No fetch of any kind: the file must not depend on (or leak to) the network.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def experiment_sections(exp: Experiment, index: int, options: ReportOptions) -> str:
    imp = experiment_importance(exp, options)
    importance_note = (
        ""
        if imp.note
        else f"fANOVA main effects on a random forest over {imp.n_trials} {imp.basis}; main "
        f"effects explain {imp.explained:.0%} of the forest's variance (the rest: "
        f"interactions). Computed in {imp.seconds:.2f} s."
    )
    cuts = cut_points(exp)
    curve_note = (
        "Dashed orange lines: iterations where the scheduler stopped trials (its rungs); "
        "triangles: where each stopped trial ended. Bold: the best trial."
        if cuts
        else "No trial was stopped early by the scheduler. Bold: the best trial."
    )
    return "".join(
        [
            glance_section(exp, index),
            _section(
                "history",
                index,
                "Optimization history",
                history_chart([exp], overlay=False),
                "Each trial's final metric at its start time; the line is the best so far. "
                "Triangles: stopped by the scheduler (lower fidelity); crosses: errored or "
                "diverged (at the bottom when they reported no metric).",
            ),
            _section("curves", index, "Learning curves", curves_chart(exp, options), curve_note),
            (
                _section(
                    "schedule",
                    index,
                    "Hyperparameter schedule",
                    schedule_charts(exp),
                    "Population-based training: each member's perturbed values per report; "
                    "diamonds: the member copied a better member's checkpoint (exploit) and "
                    "went on with new values (explore).",
                )
                if exp.schedule is not None
                else ""
            ),
            _section(
                "importance", index, "Parameter importance", importance_chart(imp), importance_note
            ),
            _section(
                "slices",
                index,
                "Slices",
                slice_charts(exp),
                "The metric against each parameter (log axes for log parameters; categories as "
                "strips, jittered).",
            ),
            _section(
                "parallel",
                index,
                "Parallel coordinates",
                parallel_chart(exp, options, index),
                "Colour: the metric (yellow best); red and bold: the best trials. Hover a line "
                "for its trial.",
            ),
            _section("timeline", index, "Resource timeline", timeline_chart(exp)),
            _section(
                "trials",
                index,
                "All trials",
                trials_table(exp),
                "Click a header to sort; type to filter.",
            ),
        ]
    )


def render_html(experiments: Sequence[Experiment], options: ReportOptions | None = None) -> str:
    """The report as one HTML string (see the module docstring)."""
    options = options or ReportOptions()
    names = ", ".join(e.name for e in experiments)
    parts = []
    nav = []
    if len(experiments) > 1:
        rows = []
        for k, exp in enumerate(experiments):
            best = best_row(exp.frame, exp.mode) if len(exp.frame) else None
            rows.append(
                f'<tr><td><span class="dot" style="background:'
                f'{EXPERIMENT_COLORS[k % len(EXPERIMENT_COLORS)]}"></span>{_esc(exp.name)}</td>'
                f"<td>{_esc(exp.meta.get('searcher', '–'))}</td>"
                f"<td>{_esc(exp.meta.get('scheduler', '–'))}</td><td>{len(exp.frame)}</td>"
                f"<td>{_esc(exp.metric)} ({exp.mode})</td>"
                f"<td>{_fmt(np.nan if best is None else best['final_metric'])}</td></tr>"
            )
        table = (
            '<table class="trials compare"><thead><tr><th>experiment</th><th>searcher</th>'
            "<th>scheduler</th><th>trials</th><th>objective</th><th>best</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        parts.append(
            _section(
                "compare",
                0,
                "Experiments compared",
                table + history_chart(experiments, overlay=True),
                "Histories overlaid: each experiment's trials (dots) and best so far (line), "
                "time from its own first trial.",
            )
        )
        nav.append('<a href="#compare-0">compare</a>')
    for k, exp in enumerate(experiments):
        parts.append(f'<div class="experiment" id="experiment-{k}">')
        parts.append(experiment_sections(exp, k, options))
        parts.append("</div>")
        nav.append(f'<a href="#glance-{k}">{_esc(exp.name)}</a>')
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>hpt_ray report: {_esc(names)}</title><style>{STYLE}</style></head><body>"
        f"<h1>hpt_ray report: {_esc(names)}</h1>"
        f'<p class="note">Written {stamp} by hpt_ray; a snapshot if a run is still going. '
        f"<nav>{''.join(nav)}</nav></p>"
        '<pre id="js-errors"></pre>'
        + "".join(parts)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


def report_html(
    dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str] | None = None,
    *,
    options: ReportOptions | None = None,
) -> Path:
    """Write the HTML report of one or several experiment directories; return its path.

    Args:
        dirs: an experiment directory (or storage URI), or several: their histories are
            overlaid, then each gets its sections.
        path: the file to write (default: ``report.html`` in the first directory, or in the
            current directory when that is a URI).
        options: see `ReportOptions`.
    """
    directories = [dirs] if isinstance(dirs, (str, os.PathLike)) else list(dirs)
    if not directories:
        raise ValueError("dirs: give at least one experiment directory")
    experiments = [load_experiment(d) for d in directories]
    text = render_html(experiments, options)
    if path is None:
        first = str(directories[0])
        path = Path("report.html") if is_uri(first) else Path(first) / "report.html"
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(target, text)


# -- PNG figures -----------------------------------------------------------------------------


def report_png(
    dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    *,
    options: ReportOptions | None = None,
) -> list[Path]:
    """Write the report's figures as PNG files (for papers and CI logs); return their paths.

    One file per figure and experiment: ``<name>-history.png``, ``-curves``, ``-importance``,
    ``-slices``, ``-parallel``, ``-timeline``; with several experiments also
    ``compare-history.png``. Figures without data (no finished trial yet) are left out.
    Needs matplotlib (``pip install matplotlib``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ValueError(
            "--png: the PNG figures need matplotlib; pip install matplotlib (or hpt_ray[bench])"
        ) from exc
    options = options or ReportOptions()
    directories = [dirs] if isinstance(dirs, (str, os.PathLike)) else list(dirs)
    if not directories:
        raise ValueError("dirs: give at least one experiment directory")
    experiments = [load_experiment(d) for d in directories]
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if len(experiments) > 1:
        fig, ax = plt.subplots(figsize=(9, 4))
        for k, exp in enumerate(experiments):
            x, y = _history_xy(exp)
            color = EXPERIMENT_COLORS[k % len(EXPERIMENT_COLORS)]
            ax.scatter(x, y, s=12, color=color, alpha=0.45)
            order = np.argsort(x, kind="stable")
            ax.step(
                x[order],
                best_so_far(y[order], exp.mode),
                where="post",
                color=color,
                label=exp.name,
            )
        ax.set_xlabel("trial start (s since the first trial)")
        ax.set_title("Optimization history")
        ax.legend()
        save(fig, "compare-history")
    for exp in experiments:
        stem = _safe_name(exp.name)
        y = exp.frame["final_metric"].to_numpy(dtype=float)
        has_metric = bool(np.isfinite(y).any())
        if has_metric:
            fig, ax = plt.subplots(figsize=(9, 4))
            x, _ = _history_xy(exp)
            for status in STATUSES:
                pick = (exp.frame["status"] == status).to_numpy() & np.isfinite(y)
                if pick.any():
                    ax.scatter(x[pick], y[pick], s=16, color=STATUS_COLORS[status], label=status)
            order = np.argsort(x, kind="stable")
            ax.step(
                x[order],
                best_so_far(y[order], exp.mode),
                where="post",
                color="#222",
                label="best so far",
            )
            ax.set(
                xlabel="trial start (s since the first trial)",
                ylabel=exp.metric,
                title=f"{exp.name}: optimization history",
            )
            ax.legend(fontsize=8)
            save(fig, f"{stem}-history")
        if exp.curves:
            fig, ax = plt.subplots(figsize=(9, 4))
            status_of = dict(zip(exp.frame["trial_id"], exp.frame["status"], strict=True))
            for trial_id, (its, vals) in exp.curves.items():
                color = STATUS_COLORS.get(str(status_of.get(trial_id, "running")), "#333")
                ax.plot(
                    its, vals, color=color, alpha=0.7, lw=1, marker="." if len(its) < 2 else None
                )
            for cut in cut_points(exp):
                ax.axvline(cut, color="#ff7f0e", ls="--", lw=1)
            ax.set(
                xlabel="training iteration",
                ylabel=exp.metric,
                title=f"{exp.name}: learning curves (dashed: cut points)",
            )
            save(fig, f"{stem}-curves")
        imp = experiment_importance(exp, options)
        if not imp.note:
            order = np.argsort(imp.shares, kind="stable")
            fig, ax = plt.subplots(figsize=(7, 0.5 + 0.35 * len(order)))
            ax.barh([imp.names[j] for j in order], imp.shares[order], color="#1f77b4")
            ax.set(
                xlabel="share of the metric's variance (fANOVA main effects)",
                title=f"{exp.name}: parameter importance",
            )
            save(fig, f"{stem}-importance")
        varying = [p for p in exp.params if p.varies]
        if varying and has_metric:
            cols = min(3, len(varying))
            rows = math.ceil(len(varying) / cols)
            fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
            rng = np.random.default_rng(0)
            for ax, p in zip(axes.flat, varying, strict=False):
                colors = [STATUS_COLORS.get(str(s), "#333") for s in exp.frame["status"]]
                if p.kind == "cat":
                    codes = {c: i for i, c in enumerate(p.categories)}
                    x = np.array([codes.get(_label(v), -1) for v in exp.frame[p.column]], float)
                    x = x + rng.uniform(-0.25, 0.25, size=len(x))
                    ax.set_xticks(range(len(p.categories)), p.categories)
                else:
                    x = exp.frame[p.column].to_numpy(dtype=float)
                    if p.log:
                        ax.set_xscale("log")
                ax.scatter(x, y, s=12, c=colors)
                ax.set(xlabel=p.name, ylabel=exp.metric)
            for ax in list(axes.flat)[len(varying) :]:
                ax.set_visible(False)
            save(fig, f"{stem}-slices")
            fig, ax = plt.subplots(figsize=(max(8, 1.6 * (len(varying) + 1)), 4))
            X = encode(exp.frame, varying)
            span = np.ptp(X, axis=0)
            Xn = (X - X.min(axis=0)) / np.where(span > 0, span, 1)  # (n, p)
            finite = np.isfinite(y)
            yn = (y - np.nanmin(y)) / (np.nanmax(y) - np.nanmin(y) or 1.0)
            order = np.argsort(yn if exp.mode == "max" else -yn)
            cmap = plt.get_cmap("viridis")
            for i in order:
                if finite[i]:
                    t = yn[i] if exp.mode == "max" else 1 - yn[i]
                    ax.plot(range(len(varying) + 1), [*Xn[i], yn[i]], color=cmap(t), alpha=0.6)
            ax.set_xticks(range(len(varying) + 1), [p.name for p in varying] + [exp.metric])
            ax.set_yticks([])
            ax.set_title(f"{exp.name}: parallel coordinates (colour: {exp.metric}, yellow best)")
            save(fig, f"{stem}-parallel")
        if exp.sessions:
            placed = lanes(exp.sessions)
            rows_ = sorted({(node, lane) for node, lane, _ in placed})
            index = {r: i for i, r in enumerate(rows_)}
            t0 = min(s.start for s in exp.sessions)
            status_of = dict(zip(exp.frame["trial_id"], exp.frame["status"], strict=True))
            fig, ax = plt.subplots(figsize=(9, 1 + 0.3 * len(rows_)))
            for node, lane, s in placed:
                ax.barh(
                    index[(node, lane)],
                    s.end - s.start,
                    left=s.start - t0,
                    height=0.8,
                    color=STATUS_COLORS.get(str(status_of.get(s.trial_id)), "#333"),
                )
            ax.set_yticks(range(len(rows_)), [f"{n} slot {lane + 1}" for n, lane in rows_])
            ax.set(
                xlabel="seconds since the first trial start",
                title=f"{exp.name}: resource timeline",
            )
            save(fig, f"{stem}-timeline")
    return written


def _history_xy(exp: Experiment) -> tuple[np.ndarray, np.ndarray]:
    starts = exp.trial_start()
    x = np.array([starts.get(t, np.nan) for t in exp.frame["trial_id"]], dtype=float)
    if not np.isfinite(x).any():
        x = np.arange(len(exp.frame), dtype=float)
    return x, exp.frame["final_metric"].to_numpy(dtype=float)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "experiment"
