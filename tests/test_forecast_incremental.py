"""The forecast's running least-squares sums equal a direct fit over its buffer.

The forecast rule no longer refits its window: it keeps running sums per point
(:class:`plantguard_rules.forecast.RunningTrend`) and updates them as samples
enter and leave the ring buffer.  These tests replay random scans through the
rule — values with NaN, Bad quality, repeated source times, rings that wrap
many times, points sampled in step and out of step — while keeping, beside it,
the samples the rule should have buffered by its own documented behaviour (a
sample is taken when it is usable and ``window / samples`` seconds after the
previous one; the last ``samples`` are kept), and compare the rule's line with
an ordinary least-squares fit of those samples.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.model import Point, Quality
from plantguard.table import ValueTable
from plantguard_rules.forecast import ForecastConfig, ForecastRule, RunningTrend, _duration

GOOD, BAD = int(Quality.GOOD), int(Quality.BAD_COMMUNICATION_ERROR)


@dataclass
class Reference:
    """What one point's buffer must hold, tracked independently of the rule."""

    cap: int
    interval: float
    next_due: float = -np.inf
    samples: deque[tuple[float, float]] = field(default_factory=deque)

    def offer(self, t: float, y: float, quality: int) -> None:
        if quality >= Quality.BAD or not np.isfinite(y) or t < self.next_due:
            return
        self.samples.append((t, y))
        if len(self.samples) > self.cap:
            self.samples.popleft()
        self.next_due = t + self.interval


def direct_fit(samples: deque[tuple[float, float]]) -> tuple[float, float, float, float]:
    """(level at the newest sample, slope, residual standard error, n) by least squares."""
    t = np.array([s[0] for s in samples])
    y = np.array([s[1] for s in samples])
    tr = t - t[-1]
    design = np.column_stack([np.ones_like(tr), tr])
    (level, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - level - slope * tr
    scale = float(np.sqrt(resid @ resid / max(t.size - 2, 1)))
    return float(level), float(slope), scale, float(t.size)


def assert_matches(rule: ForecastRule, refs: list[Reference]) -> None:
    rows = np.array([i for i, r in enumerate(refs) if len(r.samples) >= 3], dtype=np.intp)
    if not rows.size:
        return
    assert rule.trend.count(rows).tolist() == [len(refs[i].samples) for i in rows]
    fit = rule.trend.fit(rows)
    for k, i in enumerate(rows.tolist()):
        level, slope, scale, n = direct_fit(refs[i].samples)
        ys = np.array([s[1] for s in refs[i].samples])
        ts = np.array([s[0] for s in refs[i].samples])
        size = float(np.ptp(ys)) + 1e-6 * float(np.abs(ys).max()) + 1e-12
        span = float(np.ptp(ts))
        assert fit.n[k] == n
        assert fit.level[k] == pytest.approx(level, abs=1e-6 * size)
        assert fit.slope[k] == pytest.approx(slope, abs=1e-6 * size / span)
        assert fit.scale[k] == pytest.approx(max(scale, 1e-12), abs=1e-5 * size)


scan = st.tuples(
    st.floats(0.0, 30.0),  # source time advance (0: no new sample)
    st.lists(
        st.one_of(
            st.floats(-1e3, 1e3, allow_nan=False),
            st.just(float("nan")),
            st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: -v),
        ),
        min_size=3,
        max_size=3,
    ),
    st.lists(st.sampled_from([GOOD, GOOD, GOOD, BAD]), min_size=3, max_size=3),
    st.lists(st.booleans(), min_size=3, max_size=3),  # does this point get a new sample?
)


@settings(max_examples=100, deadline=None)
@given(
    samples=st.lists(st.integers(5, 8), min_size=3, max_size=3),
    windows=st.lists(st.floats(5.0, 120.0), min_size=3, max_size=3),
    offset=st.floats(0.0, 2e9),
    scans=st.lists(scan, min_size=1, max_size=80),
)
def test_incremental_fit_equals_direct_least_squares(
    samples: list[int],
    windows: list[float],
    offset: float,
    scans: list[tuple[float, list[float], list[int], list[bool]]],
) -> None:
    points = [Point(id=f"d.p{i}", device_id="d") for i in range(3)]
    table = ValueTable(points)
    configs = [
        ForecastConfig(limit=1e9, samples=s, window=w, min_samples=4)
        for s, w in zip(samples, windows, strict=True)
    ]
    rule = ForecastRule(table, list(zip(points, configs, strict=True)))
    refs = [Reference(c.samples, c.window / c.samples) for c in configs]
    now = offset
    for advance, values, qualities, moves in scans:
        now += advance
        idx = np.flatnonzero(moves)
        if idx.size:
            table.update(
                idx,
                np.array(values)[idx],
                np.array(qualities, dtype=np.uint8)[idx],
                now,
            )
            for i in idx.tolist():
                refs[i].offer(now, values[i], qualities[i])
        rule.evaluate(table, now)
        assert_matches(rule, refs)


@settings(max_examples=60, deadline=None)
@given(
    cap=st.integers(5, 40),
    pushes=st.integers(1, 400),
    slope=st.floats(-5.0, 5.0),
    level=st.floats(-1e6, 1e6),
    noise=st.floats(0.0, 10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_many_laps_in_step_keep_the_sums_exact(
    *, cap: int, pushes: int, slope: float, level: float, noise: float, seed: int
) -> None:
    """Rows pushed in step (one shared slot, the dense path) over many ring laps,
    with large values: rounding does not build up in the sums."""
    rng = np.random.default_rng(seed)
    rows = np.arange(4, dtype=np.intp)
    trend = RunningTrend(np.full(4, cap, dtype=np.intp))
    history: list[deque[tuple[float, float]]] = [deque(maxlen=cap) for _ in rows]
    t0 = 1.7e9
    for k in range(pushes):
        t = np.full(4, t0 + 10.0 * k)
        y = level + slope * (t - t0) + rng.normal(0, noise + 1e-9, 4)
        trend.push(rows, t, y)
        for i in rows.tolist():
            history[i].append((float(t[i]), float(y[i])))
    if min(len(h) for h in history) < 3:
        return
    fit = trend.fit(rows)
    for i in rows.tolist():
        want_level, want_slope, want_scale, n = direct_fit(history[i])
        ys = np.array([s[1] for s in history[i]])
        size = float(np.ptp(ys)) + 1e-6 * float(np.abs(ys).max()) + 1e-12
        assert fit.n[i] == n
        assert fit.level[i] == pytest.approx(want_level, abs=1e-6 * size)
        assert fit.slope[i] == pytest.approx(want_slope, abs=1e-6 * size / (10.0 * (n - 1)))
        assert fit.scale[i] == pytest.approx(max(want_scale, 1e-12), abs=1e-5 * size)


def test_a_trend_in_noise_warns_and_names_the_crossing() -> None:
    """The rule end to end on the running fit: a steady rise in noise warns about
    the horizon ahead, and a fit of the same buffer gives the same line."""
    point = Point(id="t.level", name="Level", unit="%", device_id="t")
    table = ValueTable([point])
    rule = ForecastRule(table, [(point, ForecastConfig(limit=90.0, horizon=600, window=300))])
    rng = np.random.default_rng(3)
    first = None
    for t in range(0, 3000, 2):
        value = 40 + 0.02 * t + rng.normal(0, 0.2)  # reaches 90 at t = 2500 s
        table.update(np.array([0]), np.array([value]), np.array([GOOD], np.uint8), float(t))
        for f in rule.evaluate(table, float(t)):
            if f.active and first is None:
                first = t
                assert f.message.startswith("Level will reach 90 (90 %) in about ")
    assert first is not None
    assert 2500 - first == pytest.approx(600, abs=150)
    fit = rule.trend.fit(np.array([0]))
    assert fit.slope[0] == pytest.approx(0.02, abs=0.003)


@pytest.mark.parametrize(
    "template",
    [
        "{name} will reach {limit_name} in {eta} ({early}–{late}), {value:.1f} {unit}",
        "{name}: {limit:g} {missing} {missing:.2f}",
        "{name} {limit:d}",
        "{0} {name}",
        "bad } brace {name}",
        "{{literal}} {name!r:>12} {value.real:.2f} {condition}",
    ],
)
def test_message_templates_are_filled_as_alarm_definitions_render_them(template: str) -> None:
    """Messages are filled as :meth:`AlarmDefinition.render` fills them: an unknown
    field stays as written, a template that does not fit is shown as written."""
    point = Point(id="t.level", name="Level", unit="%", device_id="t")
    table = ValueTable([point])
    cfg = ForecastConfig(limit=90.0, horizon=600, window=300, message=template)
    rule = ForecastRule(table, [(point, cfg)])
    rng = np.random.default_rng(3)
    for t in range(0, 3000, 2):
        value = 40 + 0.02 * t + rng.normal(0, 0.2)
        table.update(np.array([0]), np.array([value]), np.array([GOOD], np.uint8), float(t))
        warnings = [f for f in rule.evaluate(table, float(t)) if f.active]
        if warnings:
            [f] = warnings
            assert f.message == rule.alarms()[0].render(
                name="Level",
                unit="%",
                condition="FORECAST",
                value=f.value,
                limit=90.0,
                limit_name="90",
                eta=_duration(float(rule.eta[0])),
                early=_duration(float(rule.early[0])),
                late=_duration(float(rule.late[0])),
            )
            return
    pytest.fail("no warning")
