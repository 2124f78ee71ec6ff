"""Replaying recorded rows through the rule host, exactly as the live engine scans.

Offline scores are only worth something if they are what the plant would have
seen.  So ``plantguard detect score`` and the benchmarks do not call the model
directly: they build a value table with one point per column, create the
``multivariate`` rule through its registered rule type from the model *file*,
and for every row write the values into the table and run one scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plantguard.plugin import Point, Quality, RuleContext, Site, ValueTable

from .base import FloatArray
from .multivariate import (
    GroupConfig,
    MultivariateConfig,
    MultivariateRule,
    MultivariateRuleType,
    MultivariateSiteConfig,
)
from .mvmodels import Score

__all__ = ["GROUP", "replay_model"]

GROUP = "offline"
_SITE = Site(id="offline")


def replay_model(model_file: Path, columns: Sequence[str], rows: FloatArray) -> list[Score]:
    """Scores of ``rows`` (in the order of ``columns``) under the model in ``model_file``.

    Column names become point ids as they are (a CSV header may hold names that
    the site file would not allow; the table does not care).
    """
    points = [Point.model_construct(id=c, name=c, device_id="") for c in columns]
    table = ValueTable(points)
    site_cfg = MultivariateSiteConfig(groups={GROUP: GroupConfig(model=str(model_file))})
    rule = MultivariateRuleType().create(
        _SITE,
        table,
        [(p, MultivariateConfig(group=GROUP)) for p in points],
        RuleContext(site_config=site_cfg),
    )
    assert isinstance(rule, MultivariateRule)
    [group] = rule.groups
    if group.model is None:
        raise ValueError(f"{model_file}: not a usable model for columns {', '.join(columns)}")
    idx = np.arange(len(points))
    none = Score(float("nan"), False, "")
    out = []
    for i, row in enumerate(rows):
        quality = np.where(np.isfinite(row), Quality.GOOD, Quality.BAD).astype(np.uint8)
        table.update(idx, row, quality, float(i + 1))
        group.last = none
        rule.evaluate(table, float(i + 1))
        out.append(group.last)
    return out
