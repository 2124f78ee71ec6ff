"""The automatic choice of method, smoothing, hold and limit (``plantguard_rules.autofit``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plantguard.cli import main
from plantguard.model import Point, Quality
from plantguard.store import Store
from plantguard_rules.autofit import (
    FAR,
    AutoFit,
    auto_fit,
    candidates,
    fit_group,
    min_auto_rows,
    rate_threshold,
    table_lines,
)
from plantguard_rules.batch import batch_statistics
from plantguard_rules.ensemble import EnsembleModel, load_model
from plantguard_rules.faults import correlated_pairs, inject
from plantguard_rules.mvmodels import FitError, Method, ModelOptions, fit_structure
from plantguard_rules.replay import replay_model

NAMES = ["flow", "pressure", "temp", "level"]


def _plant(n: int, seed: int) -> np.ndarray:
    """flow and pressure keep a relation (pressure ≈ flow); temp and level wander
    on their own; every series is serially correlated, as plant data is."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, 3))
    f = np.empty_like(e)
    f[0] = e[0]
    for i in range(1, n):
        f[i] = 0.7 * f[i - 1] + 0.7 * e[i]
    x = np.column_stack([f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    return x + rng.normal(0, 0.15, (n, 4))


def _flags(fit: AutoFit, rows: np.ndarray) -> np.ndarray:
    scorer = fit.model.scorer()
    return np.array([scorer.step(r).flag for r in rows], dtype=bool)


@pytest.fixture(scope="module")
def fitted() -> AutoFit:
    return auto_fit(_plant(1500, 0), NAMES)


@pytest.mark.parametrize(
    ("method", "lags", "smoothing"),
    [
        ("residual", 0, 0.1),
        ("residual", 0, 1.0),
        ("mewma", 0, 0.2),
        ("pca", 0, None),
        ("dpca", 2, 0.2),
    ],
)
def test_batch_statistics_are_the_scorers(
    method: Method, lags: int, smoothing: float | None
) -> None:
    x = _plant(300, 1)
    opts = ModelOptions.for_method(method, lags=lags, smoothing=smoothing)
    model = fit_structure(x, NAMES, method, opts)
    scorer = model.scorer()
    expected = [scorer.statistics(r) for r in x[:80]]
    batch = batch_statistics(model, np.stack([x[:80], x[:80]]))
    for i, e in enumerate(expected):
        if e is None:
            assert np.isnan(batch[1, i]).all()
        else:
            np.testing.assert_allclose(batch[1, i], e, rtol=1e-9, atol=1e-12)


def test_a_correlation_break_a_per_variable_limit_misses_is_detected(fitted: AutoFit) -> None:
    clean = _plant(4000, 7)
    # The relation breaks: pressure follows its own course, within its normal range.
    broken = _plant(1200, 8)
    broken[:, 1] = _plant(1200, 9)[:, 1]
    # A per-variable limit at the same target: each variable's 1 − FAR/4 quantile band
    # of the training rows (so that the four together flag about FAR of normal rows).
    train = _plant(1500, 0)
    lo = np.quantile(train, FAR / 8, axis=0)
    hi = np.quantile(train, 1 - FAR / 8, axis=0)
    per_variable = np.any((broken < lo) | (broken > hi), axis=1).mean()
    detected = _flags(fitted, broken)[100:].mean()
    false_alarms = _flags(fitted, clean).mean()
    assert per_variable < 0.1
    assert detected > 0.6
    assert detected > 5 * per_variable
    # the target on clean rows the choice never saw (with the spread of a 1,500-row fit)
    assert false_alarms <= 2 * FAR


def test_the_model_file_records_the_candidates_and_why(tmp_path: Path, fitted: AutoFit) -> None:
    data = json.loads(fitted.model.dumps())
    auto = data["options"]["auto"]
    declared = {c.label for c in candidates()}
    singles = [r for r in auto["candidates"] if "+" not in r["candidate"]]
    assert {r["candidate"] for r in singles} == declared
    assert sum(r["chosen"] for r in auto["candidates"]) == 1
    chosen = next(r for r in auto["candidates"] if r["chosen"])
    assert chosen["candidate"] == auto["chosen"]
    assert auto["why"].startswith(auto["chosen"])
    for r in auto["candidates"]:
        assert r["held_out_far"] <= auto["far"]  # every limit was set to meet the target
    checked = data["options"]["checked"]  # what acceptance and detect fit read of any model
    assert checked["holds"] is True
    assert checked["held_out_alarm_rate"] == chosen["held_out_far"]
    assert checked["margin"] == chosen["limit_raised_by"] >= 1.0
    # no single candidate detects more than the chosen one
    assert chosen["detection"] >= max(r["detection"] for r in singles)
    assert set(auto["fault_kinds"]) >= {"step", "drift", "variance", "decorrelation"}
    lines = table_lines(fitted)
    assert len(lines) == len(auto["candidates"]) + 2
    assert lines[-1] == f"chosen: {auto['why']}"
    # the file is what the live rule scores: same flags through the rule host
    path = tmp_path / "m.json"
    path.write_text(fitted.model.dumps())
    rows = _plant(300, 3)
    rows[150:, 2] += 3.0
    replayed = [s.flag for s in replay_model(path, NAMES, rows)]
    assert replayed == list(_flags(fitted, rows))
    assert np.mean(replayed[200:]) > 0.9


def test_a_300_row_training_set_works() -> None:
    fit = auto_fit(_plant(300, 2), NAMES)
    rows = _plant(400, 4)
    rows[200:, 0] += 3.0  # a 3σ-ish bias on flow alone: the relation breaks
    flags = _flags(fit, rows)
    assert flags[250:].mean() > 0.8
    assert fit.model.trained_on["rows"] == 300


def test_short_or_unusable_training_rows_are_refused() -> None:
    with pytest.raises(FitError, match="too few rows to train: 100"):
        auto_fit(_plant(100, 0), NAMES)
    with pytest.raises(FitError, match="between 0 and 50 %"):
        auto_fit(_plant(300, 0), NAMES, far=0.7)
    with pytest.raises(FitError, match="at least 2 variables"):
        auto_fit(_plant(300, 0)[:, :1], NAMES[:1])
    x = _plant(300, 0)
    x[5, 1] = np.nan
    with pytest.raises(FitError, match="missing values"):
        auto_fit(x, NAMES)
    with pytest.raises(FitError, match="--limits"):
        fit_group(_plant(300, 0), NAMES, None, limits="checked")


def test_given_smoothing_and_hold_replace_the_candidates_own() -> None:
    fit = auto_fit(_plant(400, 5), NAMES, smoothing=0.3, hold=4)
    labels = [r["candidate"] for r in fit.table]
    assert all(label.endswith("hold 4") for label in labels)
    assert all("λ 0.3" in label for label in labels)
    explicit = fit_group(_plant(400, 5), NAMES, "pca", limits="method")
    assert (explicit.auto, explicit.warning) == (None, None)
    assert explicit.model.method == "pca"


def test_too_few_rows_for_the_choice_fit_the_recommended_method_and_say_so() -> None:
    fit = fit_group(_plant(min_auto_rows() - 1, 5), NAMES, None)
    assert fit.auto is None
    assert fit.model.method == "residual"
    assert fit.warning is not None
    assert f"too few for the automatic choice (it needs {min_auto_rows()})" in fit.warning


def test_rate_threshold_is_the_lowest_that_meets_the_target() -> None:
    rng = np.random.default_rng(0)
    segments = [rng.normal(size=200), rng.normal(size=300)]
    for hold in (0, 5):
        t = rate_threshold(segments, hold, 0.05)
        values = np.unique(np.concatenate(segments))
        below = values[values < t][-1]

        def rate(th: float, h: int = hold) -> float:
            flagged = 0
            for s in segments:
                shown = np.zeros(s.size, dtype=bool)
                for i in np.flatnonzero(s > th):
                    shown[i : i + h + 1] = True
                flagged += int(shown.sum())
            return flagged / 500

        assert rate(t) <= 0.05 < rate(float(below))


def test_faults_change_only_the_episode_and_pairs_are_the_strongest() -> None:
    x = _plant(400, 6)
    pairs = correlated_pairs(x)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]  # only flow–pressure are related
    rng = np.random.default_rng(1)
    sd = x.std(axis=0)
    copies, faults = inject(x[:90], 30, sd, pairs=pairs, donor=x[200:290], rng=rng)
    assert copies.shape == (len(faults), 90, 4)
    np.testing.assert_array_equal(copies[:, :30], np.broadcast_to(x[:30], (len(faults), 30, 4)))
    kinds = [f.kind for f in faults]
    assert kinds.count("step") == 4  # every variable of a 4-wide group
    assert "decorrelation" in kinds
    steps = [f for f in faults if f.kind == "step"]
    for f, c in zip(faults, copies, strict=True):
        if f in steps:
            (j,) = f.variables
            assert 1.0 <= f.size <= 3.0
            np.testing.assert_allclose(c[30:, j] - x[30:90, j], f.size * sd[j])


def test_ensembles_combine_members_and_keep_one_hold(tmp_path: Path) -> None:
    x = _plant(600, 0)
    members = []
    for method in ("residual", "pca"):
        m = fit_structure(x, NAMES, method, ModelOptions.for_method(method))
        top = np.nanmax(batch_statistics(m, x), axis=0)  # limits above every training row
        m.limits = {
            k: float(1.2 * v)
            for k, v in zip(("r",) if method == "residual" else ("t2", "q"), top, strict=True)
        }
        members.append(m)
    limits = {f"{i}.{k}": v for i, m in enumerate(members) for k, v in m.limits.items()}
    ens = EnsembleModel(members, hold=3)
    again = load_model(json.loads(ens.dumps()))
    assert isinstance(again, EnsembleModel)
    assert again.method == "ensemble(residual+pca)"
    assert again.limits == pytest.approx(limits, rel=1e-12)
    rows = _plant(200, 1)
    rows[100:110, 0] += 6.0
    scorer, singles = again.scorer(), [m.scorer() for m in members]
    after = 0
    for r in rows:
        s = scorer.step(r)
        raws = [one.step_raw(r) for one in singles]
        assert s.score == pytest.approx(max(raw.score for raw in raws), rel=1e-12)
        if any(raw.flag for raw in raws):
            assert s.flag
            after = 0
        else:
            after += 1
            assert s.flag == ("held" in s.reason)
            assert not s.flag or after <= 3
    path = tmp_path / "e.json"
    path.write_text(ens.dumps())
    flags = [s.flag for s in replay_model(path, NAMES, rows)]
    assert all(flags[101:113])  # the fault, and the hold after it
    assert not any(flags[:100])
    data = json.loads(ens.dumps())
    data["members"] = data["members"][:1]
    with pytest.raises(ValueError, match="at least 2 members"):
        load_model(data)
    data = json.loads(ens.dumps())
    data["members"][1]["variables"] = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="different variables"):
        load_model(data)
    with pytest.raises(ValueError, match="not a PlantGuard multivariate model"):
        load_model({"format": "other"})


SITE = """
id: plant
scan_interval: 1
store: {{url: {db}}}
areas:
  - id: a
    devices:
      - id: d
        driver: modbus
        connection: {{host: 127.0.0.1, port: 5020}}
        points:
          - {{id: f, address: {{register: 0}}, rules: {{multivariate: {{group: g}}}}}}
          - {{id: p, address: {{register: 10}}, rules: {{multivariate: {{group: g}}}}}}
          - {{id: t, address: {{register: 20}}, rules: {{multivariate: {{group: g}}}}}}
"""


def test_train_makes_the_same_choice_for_a_group_without_a_method(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "h.db"
    site = tmp_path / "site.yaml"
    site.write_text(SITE.format(db=db))
    store = Store(str(db))
    keys = store.register_points([Point(id=f"d.{n}", device_id="d") for n in "fpt"])
    x = _plant(400, 0)[:, :3]
    t0 = 1_000_000.0
    for j, name in enumerate("fpt"):
        store.write_history(
            np.full(400, keys[f"d.{name}"], dtype=np.int64),
            t0 + np.arange(400, dtype=np.float64),
            x[:, j].copy(),
            np.full(400, Quality.GOOD, dtype=np.uint8),
        )
    store.close()
    code = main(["train", str(site), "--end", str(t0 + 400), "--hours", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    saved = json.loads((tmp_path / "models" / "multivariate-g.json").read_text())
    same = auto_fit(x, ["d.f", "d.p", "d.t"])
    assert saved["trained_on"]["rows"] == 400
    assert saved["options"]["auto"]["chosen"] == next(
        r["candidate"] for r in same.table if r["chosen"]
    )
    assert f"chosen: {saved['options']['auto']['why']}" in err
