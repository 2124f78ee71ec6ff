"""Two models watching one group: an alarm when either sees a fault.

Methods see different faults: regression residuals see a relation that breaks,
PCA's T² sees a move *along* the normal pattern that no relation notices.  The
automatic choice (:mod:`plantguard_rules.autofit`) may therefore pick an
*ensemble* — members fitted on the same rows whose limits were set again on
the combined statistic (the larger of the members' normalised scores), so the
pair keeps the false-alarm target that each alone would meet at lower limits.
It wins only where the held-out synthetic faults show it pays.

Each member keeps its own scorer (lags, EWMA); the members' limits are stored
already re-set, so the ensemble's score is simply the larger member score (1.0
is the limit), and the hold is applied once, to the combined flag.  The model
file is JSON, ``"format": "plantguard-ensemble/1"``, with the members' own model
files inside.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import FloatArray
from .mvmodels import FORMAT, MultivariateModel, Score, Scorer

__all__ = ["ENSEMBLE_FORMAT", "DetectionModel", "EnsembleModel", "EnsembleScorer", "load_model"]

ENSEMBLE_FORMAT = "plantguard-ensemble/1"


@dataclass(slots=True)
class EnsembleModel:
    """Members (hold 0, limits on the combined statistic) and the ensemble's hold."""

    members: list[MultivariateModel]
    hold: int = 0
    trained_on: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return "ensemble(" + "+".join(m.method for m in self.members) + ")"

    @property
    def variables(self) -> list[str]:
        return self.members[0].variables

    @property
    def limits(self) -> dict[str, float]:
        return {f"{i}.{k}": v for i, m in enumerate(self.members) for k, v in m.limits.items()}

    def scorer(self) -> EnsembleScorer:
        return EnsembleScorer(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ENSEMBLE_FORMAT,
            "method": "ensemble",
            "variables": self.variables,
            "hold": self.hold,
            "trained_on": self.trained_on,
            "options": self.options,
            "members": [m.to_json() for m in self.members],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnsembleModel:
        members = data.get("members")
        if not isinstance(members, list) or len(members) < 2:
            raise ValueError("invalid model file: an ensemble needs at least 2 members")
        models = [MultivariateModel.from_json(m) for m in members]
        if any(m.variables != models[0].variables for m in models):
            raise ValueError("invalid model file: ensemble members watch different variables")
        try:
            hold = int(data.get("hold", 0))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid model file: hold: {exc}") from exc
        return cls(
            models,
            hold,
            dict(data.get("trained_on", {})),
            dict(data.get("options", {})),
        )


class EnsembleScorer:
    """Scores rows through every member; the larger normalised score decides."""

    def __init__(self, model: EnsembleModel) -> None:
        self.model = model
        self._members = [m.scorer() for m in model.members]
        # The hold's state lives in one scorer of its own (it holds the combined flag).
        self._holder = Scorer(model.members[0])

    def reset(self) -> None:
        for s in self._members:
            s.reset()
        self._holder.reset()

    def step(self, row: FloatArray) -> Score:
        best: Score | None = None
        for s in self._members:
            raw = s.step_raw(row)
            if not math.isnan(raw.score) and (best is None or raw.score > best.score):
                best = raw
        if best is None:  # every member still filling its lag window, or a NaN row
            return Score(math.nan, False, "")
        return self._holder.hold_score(best, self.model.hold)


DetectionModel = MultivariateModel | EnsembleModel


def load_model(data: Mapping[str, Any]) -> DetectionModel:
    """A model file's model, single or ensemble (ValueError naming what is wrong)."""
    if data.get("format") == ENSEMBLE_FORMAT:
        return EnsembleModel.from_json(data)
    if data.get("format") != FORMAT:
        raise ValueError(f"not a PlantGuard multivariate model (format {data.get('format')!r})")
    return MultivariateModel.from_json(data)
