"""``plantguard detect`` and ``plantguard train``, and site-level rule settings."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from plantguard.cli import main
from plantguard.config import ConfigError, LoadedSite
from plantguard.model import Quality
from plantguard.store import Store


def _write(path: Path, header: list[str], rows: np.ndarray, sep: str = ",") -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f, delimiter=sep)
        w.writerow(header)
        w.writerows(rows.tolist())
    return path


def _data(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 1, (n, 1))
    x = np.hstack([f, 2 * f, -f]) + rng.normal(0, 0.1, (n, 3))
    x[:, 2] += shift
    return x


def test_fit_then_score_writes_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = np.arange(300.0)[:, None]
    train = _write(
        tmp_path / "train.csv", ["time", "a", "b", "c"], np.hstack([t, _data(300, 0)]), ";"
    )
    model = tmp_path / "model.json"
    assert main(["detect", "fit", "--input", str(train), "--output", str(model)]) == 0
    printed = capsys.readouterr().out
    saved = json.loads(model.read_text())
    auto = saved["options"]["auto"]  # chosen automatically by default
    assert auto["far"] == 0.01
    assert auto["folds"] == 5
    assert [r["candidate"] for r in auto["candidates"] if r["chosen"]] == [auto["chosen"]]
    assert f"chosen: {auto['why']}" in printed
    assert saved["trained_on"]["columns"] == ["a", "b", "c"]
    assert saved["trained_on"]["rows"] == 300
    data = np.vstack([_data(100, 1), _data(100, 2, shift=1.5)])
    test = _write(
        tmp_path / "data.csv",
        ["c", "b", "a", "label"],
        np.hstack([data[:, ::-1], np.zeros((200, 1))]),
    )
    flags = tmp_path / "flags.csv"
    assert (
        main(
            ["detect", "score", "--model", str(model), "--input", str(test), "--output", str(flags)]
        )
        == 0
    )
    rows = list(csv.DictReader(flags.open()))
    assert list(rows[0]) == ["index", "score", "flag", "reason"]
    assert len(rows) == 200
    assert all(r["score"] == "" for r in rows[: saved.get("lags", 0)])  # the lag window fills
    assert float(rows[2]["score"]) >= 0  # at most 2 lags among the candidates
    assert np.mean([int(r["flag"]) for r in rows[:100]]) < 0.1
    assert np.mean([int(r["flag"]) for r in rows[120:]]) > 0.9
    assert "c " in rows[150]["reason"]


def test_fit_on_too_few_rows_for_the_choice_warns_and_fits_the_recommended_method(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _write(tmp_path / "t.csv", ["a", "b", "c"], _data(120, 0))
    out = tmp_path / "m.json"
    assert main(["detect", "fit", "--input", str(train), "--output", str(out)]) == 0
    assert "120 rows are too few for the automatic choice" in capsys.readouterr().err
    assert json.loads(out.read_text())["method"] == "residual"


def test_fit_options_set_smoothing_hold_and_limit_rule(tmp_path: Path) -> None:
    train = _write(tmp_path / "t.csv", ["a", "b", "c"], _data(300, 0))
    out = tmp_path / "m.json"
    base = ["detect", "fit", "--input", str(train), "--output", str(out)]
    args = ["--method", "residual", "--smoothing", "0.5", "--hold", "7", "--limits", "method"]
    assert main([*base, *args]) == 0
    model = json.loads(out.read_text())
    assert (model["smoothing"], model["hold"]) == (0.5, 7)
    assert model["options"]["calibration"] == "training"  # the residual method's own
    assert main([*base, "--method", "dpca"]) == 0
    checked = json.loads(out.read_text())
    assert (checked["method"], checked["options"]["folds"]) == ("dpca", 2)
    assert checked["options"]["checked"]["holds"] is True
    assert checked["options"]["checked"]["held_out_alarm_rate"] <= 0.01


def test_fit_warns_when_no_limit_holds_between_the_halves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.vstack([_data(150, 0), _data(150, 1) * 40])  # the second half is another process
    train = _write(tmp_path / "t.csv", ["a", "b", "c"], x)
    out = tmp_path / "m.json"
    args = ["detect", "fit", "--input", str(train), "--output", str(out), "--method", "residual"]
    assert main(args) == 0
    assert "no candidate limit holds 1 % from one half" in capsys.readouterr().err
    assert json.loads(out.read_text())["options"]["checked"]["holds"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--smoothing", "0"], "--smoothing: must be in (0, 1], got 0"),
        (["--hold", "-1"], "--hold: must be 0 or more rows, got -1"),
        (["--far", "60%"], "--far: must be between 0 and 50 %, got 60%"),
        (["--far", "often"], "--far: not a rate: 'often'"),
    ],
)
def test_fit_options_out_of_range_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    train = _write(tmp_path / "t.csv", ["a", "b", "c"], _data(300, 0))
    args = ["detect", "fit", "--input", str(train), "--output", str(tmp_path / "m.json")]
    with pytest.raises(SystemExit) as exc:
        main([*args, *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_fit_with_method_and_exclude(tmp_path: Path) -> None:
    x = np.hstack([_data(200, 0), np.zeros((200, 1))])
    train = _write(tmp_path / "t.csv", ["a", "b", "c", "anomaly"], x)
    out = tmp_path / "m.json"
    args = ["detect", "fit", "--input", str(train), "--output", str(out), "--method", "pca"]
    assert main([*args, "--exclude", "anomaly"]) == 0
    assert json.loads(out.read_text())["variables"] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n1,x\n", "line 3, column 'b': 'x' is not a number"),
        ("a,b\n" + "1,2\n" * 5, "too few rows to train: 5"),
        ("a,b\n1,2\n,3\n", "line 3, column 'a': missing value"),
        ("a,a\n1,2\n", "duplicate column 'a'"),
        ("", "empty file"),
    ],
)
def test_bad_training_input_exits_2_naming_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["detect", "fit", "--input", str(path), "--output", str(tmp_path / "m.json")]) == 2
    assert message in capsys.readouterr().err


def test_score_names_a_missing_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = _write(tmp_path / "t.csv", ["a", "b", "c"], _data(200, 0))
    model = tmp_path / "m.json"
    assert main(["detect", "fit", "--input", str(train), "--output", str(model)]) == 0
    data = _write(tmp_path / "d.csv", ["a", "b"], _data(10, 1)[:, :2])
    out = tmp_path / "f.csv"
    assert (
        main(["detect", "score", "--model", str(model), "--input", str(data), "--output", str(out)])
        == 2
    )
    assert "missing column 'c'" in capsys.readouterr().err


SITE = """
id: plant
scan_interval: 1
store: {{url: {db}}}
rules:
  multivariate:
    groups:
      g: {{method: pca}}
  failed_logins: {{threshold: 3}}
areas:
  - id: a
    devices:
      - id: d
        driver: modbus
        connection: {{host: 127.0.0.1, port: 5020}}
        points:
          - {{id: a, address: {{register: 0}}, rules: {{multivariate: {{group: g}}, cusum: {{}}}}}}
          - {{id: b, address: {{register: 10}}, rules: {{multivariate: {{group: g}}}}}}
          - {{id: c, address: {{register: 20}}, rules: {{multivariate: {{group: g}}}}}}
"""


def test_train_fits_group_and_drift_models_from_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "h.db"
    site = tmp_path / "site.yaml"
    site.write_text(SITE.format(db=db))
    store = Store(str(db))
    from plantguard.model import Point

    keys = store.register_points([Point(id=f"d.{n}", device_id="d") for n in "abc"])
    x = _data(400, 0)
    t0 = 1_000_000.0
    for j, name in enumerate("abc"):
        n = x.shape[0]
        store.write_history(
            np.full(n, keys[f"d.{name}"], dtype=np.int64),
            t0 + np.arange(n, dtype=np.float64),
            x[:, j].copy(),
            np.full(n, Quality.GOOD, dtype=np.uint8),
        )
    store.close()
    code = main(["train", str(site), "--end", str(t0 + 400), "--hours", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "2/2" in err
    model = json.loads((tmp_path / "models" / "multivariate-g.json").read_text())
    assert model["method"] == "pca"
    assert model["variables"] == ["d.a", "d.b", "d.c"]
    drift = json.loads((tmp_path / "models" / "drift.json").read_text())
    assert drift["points"]["d.a"]["mean"] == pytest.approx(x[:, 0].mean())


def test_train_on_a_missing_store_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "typo.db"
    site = tmp_path / "site.yaml"
    site.write_text(SITE.format(db=db))
    assert main(["train", str(site), "--hours", "1"]) == 3  # a StoreError
    assert "no PlantGuard store at" in capsys.readouterr().err
    assert not db.exists()


def test_site_level_rule_settings_are_validated(
    load_site_text: Callable[[str], LoadedSite],
) -> None:
    text = SITE.format(db="x.db")
    loaded = load_site_text(text)
    assert set(loaded.site_rule_configs) == {"multivariate", "failed_logins"}
    bad = text.replace(
        "failed_logins: {threshold: 3}", "failed_logins: {threshold: 0}\n  limit: {}"
    )
    with pytest.raises(ConfigError) as info:
        load_site_text(bad)
    message = str(info.value)
    assert "rules.failed_logins.threshold" in message
    assert "rule 'limit' has no site-level settings" in message


def test_fit_residual_method_writes_a_model_the_rule_scores(tmp_path: Path) -> None:
    train = _write(tmp_path / "t.csv", ["a", "b", "c"], _data(200, 0))
    out = tmp_path / "m.json"
    args = ["detect", "fit", "--input", str(train), "--output", str(out), "--method", "residual"]
    assert main(args) == 0
    model = json.loads(out.read_text())
    assert (model["method"], model["hold"]) == ("residual", 30)
    data = _data(200, 1)
    data[120:, 2] += 3.0
    flags_csv = tmp_path / "f.csv"
    score = ["detect", "score", "--model", str(out), "--input"]
    assert (
        main(
            [
                *score,
                str(_write(tmp_path / "d.csv", ["a", "b", "c"], data)),
                "--output",
                str(flags_csv),
            ]
        )
        == 0
    )
    with flags_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert np.mean([int(r["flag"]) for r in rows[:100]]) < 0.1
    assert np.mean([int(r["flag"]) for r in rows[140:]]) > 0.9
