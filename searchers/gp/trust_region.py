"""A TuRBO-style trust region for gp-ei (Eriksson et al., NeurIPS 2019, "Scalable global
optimization via local Bayesian optimization"), opt-in through ``GPEIOptions.trust_region``.

The region is a box in the unit cube around the best observation of the current *epoch*, with
side ``length`` stretched per numeric dimension by the GP's length scales (TuRBO's weights: the
length scales over their geometric mean, so the box's volume is ``length ** n_numeric``):

- after ``succ_tol`` consecutive improvements (an observation below the epoch's best by more
  than ``1e-3 |best|``, TuRBO's threshold) the side doubles, up to ``length_max``;
- after ``fail_tol`` consecutive non-improvements it halves;
- below ``length_min`` the region restarts: the side goes back to ``length_init``, the counters
  and the epoch's best are cleared, and the next ``n_design`` asks are fresh points of the core's
  Sobol sequence (not a new sequence: its continuation fills the cube around what was seen).

The first ``n_design`` observations of an epoch only set its best (TuRBO counts only the trust
region's own proposals). Observations are counted one at a time in the order they are told, so
asynchronous completions need no batch bookkeeping. Categorical dimensions are not boxed (a box
on a category's unit coordinate has no meaning); integer and quantized ones are at least one
level wide on each side, so snapping to a level can move a point.

Notation: dim: space dimensions; center: (dim,) unit point; lower, upper: (dim,) the box.

The state is six numbers (`TrustRegion.state`); a restored region behaves exactly as the
uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["TrustRegion"]

_IMPROVEMENT = 1e-3  # relative margin of a success (TuRBO)


class TrustRegion:
    """The side length, the success/failure counters and the epoch of a trust region."""

    def __init__(
        self,
        *,
        length_init: float,
        length_min: float,
        length_max: float,
        succ_tol: int,
        fail_tol: int,
        n_design: int,
    ) -> None:
        self.length_init = length_init
        self.length_min = length_min
        self.length_max = length_max
        self.succ_tol = succ_tol
        self.fail_tol = fail_tol
        self.n_design = n_design
        self.length = length_init
        self.n_succ = 0
        self.n_fail = 0
        self.best: float | None = None  # the epoch's best observed value
        self.epoch_start = 0  # index of the epoch's first observation
        self.epoch_sobol = 0  # Sobol points drawn by the core when the epoch began
        self.restarts = 0

    def observe(self, value: float, n_observations: int, sobol_drawn: int) -> None:
        """Count the ``n_observations``-th observation (1-based), of value ``value``."""
        design = n_observations - self.epoch_start <= self.n_design
        if not math.isfinite(value):
            if self.best is None or design:
                return  # a failed trial is never the epoch's best
            value = math.inf  # ... and counts as a failure
        if self.best is None or design:
            self.best = value if self.best is None else min(self.best, value)
            return
        if value < self.best - _IMPROVEMENT * abs(self.best):
            self.n_succ, self.n_fail = self.n_succ + 1, 0
        else:
            self.n_succ, self.n_fail = 0, self.n_fail + 1
        self.best = min(self.best, value)
        if self.n_succ >= self.succ_tol:
            self.length, self.n_succ = min(2.0 * self.length, self.length_max), 0
        elif self.n_fail >= self.fail_tol:
            self.length, self.n_fail = self.length / 2.0, 0
        if self.length < self.length_min:
            self.length = self.length_init
            self.n_succ = self.n_fail = 0
            self.best = None
            self.epoch_start = n_observations
            self.epoch_sobol = sobol_drawn
            self.restarts += 1

    def in_design(self, sobol_drawn: int, n_observations: int) -> bool:
        """Whether the next ask belongs to a restarted epoch's space-filling design."""
        if self.restarts == 0:
            return False  # the first epoch's design is the core's own initial design
        return sobol_drawn - self.epoch_sobol < self.n_design or n_observations <= self.epoch_start

    def center(self, U: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The epoch's best observed point ((dim,)) among all observations ``U`` ((n, dim))."""
        values = np.where(np.isfinite(y[self.epoch_start :]), y[self.epoch_start :], np.inf)
        return U[self.epoch_start + int(np.argmin(values))]

    def box(
        self,
        center: np.ndarray,
        lengthscales: np.ndarray,
        categorical: np.ndarray,
        min_step: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The box (lower, upper), each (dim,), of side ``length`` stretched by the length
        scales ((dim,)) over the numeric dimensions; categorical ones span [0, 1]."""
        numeric = ~categorical
        weights = np.ones_like(center)  # (dim,)
        if np.any(numeric):
            ls = lengthscales[numeric]
            w = ls / np.mean(ls)
            weights[numeric] = w / np.exp(np.mean(np.log(w)))
        half = np.maximum(0.5 * self.length * weights, min_step)  # (dim,)
        lower = np.clip(center - half, 0.0, 1.0)
        upper = np.clip(center + half, 0.0, 1.0)
        lower[categorical], upper[categorical] = 0.0, 1.0
        return lower, upper

    def state(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "n_succ": self.n_succ,
            "n_fail": self.n_fail,
            "best": self.best,
            "epoch_start": self.epoch_start,
            "epoch_sobol": self.epoch_sobol,
            "restarts": self.restarts,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.length = float(state["length"])
        self.n_succ = int(state["n_succ"])
        self.n_fail = int(state["n_fail"])
        self.best = None if state["best"] is None else float(state["best"])
        self.epoch_start = int(state["epoch_start"])
        self.epoch_sobol = int(state["epoch_sobol"])
        self.restarts = int(state["restarts"])
