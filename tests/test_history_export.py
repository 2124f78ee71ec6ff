"""History out of the store: ``history export`` round-trips into ``detect fit``'s reader
(and trains a model), unknown points are errors that name them, ``trend`` writes CSV
and plots."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from plantguard.cli import main
from plantguard.model import Point
from plantguard.reports.history import history_table
from plantguard.store import Store
from plantguard_rules.csvdata import read_table

T0 = dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp()
SINCE_ISO = "2026-02-01T00:00:00+00:00"
UNTIL_ISO = "2026-02-01T01:00:00+00:00"
N = 600  # one sample every 5 s for 50 min


def _store(db: str) -> None:
    """``tank1.level`` every 5 s from T0; ``pump1.flow`` every 5 s from T0 + 2.5 s, with
    one Bad sample; a sample of each before T0 (the values at T0)."""
    rng = np.random.default_rng(7)
    store = Store(db)
    try:
        keys = store.register_points(
            [
                Point(id="tank1.level", device_id="tank1", unit="m"),
                Point(id="pump1.flow", device_id="pump1", unit="m3/h"),
                Point(id="pump1.speed", device_id="pump1", unit="rpm"),
            ]
        )
        level_t = np.asarray(T0 - 5 + 5.0 * np.arange(N + 1), dtype=np.float64)
        flow_t = np.asarray(level_t + 2.5, dtype=np.float64)
        level = 5 + rng.normal(0, 0.1, level_t.size)
        flow = 2 * level + rng.normal(0, 0.05, flow_t.size)
        quality = np.zeros(flow_t.size, dtype=np.uint8)
        quality[100] = 130
        good = np.zeros(level_t.size, dtype=np.uint8)
        for key, t, v, q in (
            (keys["tank1.level"], level_t, level, good),
            (keys["pump1.flow"], flow_t, flow, quality),
        ):
            store.write_history(np.full(t.size, key, dtype=np.int64), t, v, q)
    finally:
        store.close()


def _export(db: str, out: Path, *extra: str) -> int:
    return main(["history", "export", "--points", "tank1.level,pump1.flow", "--since", SINCE_ISO,
                 "--until", UNTIL_ISO, "--db", db, "--output", str(out), *extra])  # fmt: skip


def test_export_round_trips_into_detect_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "h.db")
    _store(db)
    out = tmp_path / "h.csv"
    assert _export(db, out) == 0
    assert "rows × 2 points" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8").splitlines()[0] == "time,tank1.level,pump1.flow"
    table = read_table(out)
    assert table.columns == ["tank1.level", "pump1.flow"]
    assert table.time is not None
    store = Store(db)
    try:
        level = store.trend("tank1.level", T0, T0 + 3600)
        flow = store.trend("pump1.flow", T0, T0 + 3600)
        # A row whenever either point changed, from T0 on.
        assert np.array_equal(table.time, np.union1d(level.time, flow.time))
        # At each level sample, the level is that sample; the flow is the one 2.5 s
        # earlier (carried forward), the first one from before T0.
        rows = np.searchsorted(table.time, level.time)
        assert np.array_equal(table.values[rows, 0], level.value)
        previous_flow = store.trend("pump1.flow", 0, T0)
        assert table.values[0, 1] == previous_flow.value[-1]
        flow_rows = np.searchsorted(table.time, flow.time)
        expected = flow.value.copy()
        expected[flow.quality >= 128] = np.nan
        assert np.array_equal(table.values[flow_rows, 1], expected, equal_nan=True)
    finally:
        store.close()
    # The Bad flow sample empties the flow until the next sample: 2 rows.
    assert int(np.isnan(table.values[:, 1]).sum()) == 2
    assert not np.isnan(table.values[:, 0]).any()


def test_exported_history_trains_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "h.db")
    _store(db)
    out = tmp_path / "train.csv"
    # Training needs complete rows: --complete leaves out the two around the Bad sample.
    assert _export(db, out, "--complete") == 0
    table = read_table(out)
    assert not np.isnan(table.values).any()
    model = tmp_path / "model.json"
    assert main(["detect", "fit", "--input", str(out), "--output", str(model)]) == 0
    assert json.loads(model.read_text(encoding="utf-8"))
    flags = tmp_path / "flags.csv"
    assert main(["detect", "score", "--model", str(model), "--input", str(out),
                 "--output", str(flags)]) == 0  # fmt: skip


def test_export_on_a_regular_grid(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    _store(db)
    out = tmp_path / "grid.csv"
    assert _export(db, out, "--every", "1m") == 0
    table = read_table(out)
    assert len(table.values) == 60
    assert table.time is not None
    assert np.allclose(np.diff(table.time), 60.0)
    assert table.time[0] == T0


def test_unknown_points_are_errors_with_close_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "h.db")
    _store(db)
    out = tmp_path / "x.csv"
    argv = ["history", "export", "--points", "tank1.levl,pump1.flow,nothing.like.it", "--db", db,
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown points 'tank1.levl' (did you mean tank1.level?); 'nothing.like.it'" in err
    assert "0 samples" not in err
    assert not out.exists()
    assert main(["trend", "pump1.flw", "--db", db]) == 2
    assert "unknown point 'pump1.flow'" not in (err := capsys.readouterr().err)
    assert "unknown point 'pump1.flw' (did you mean pump1.flow" in err


def test_a_point_without_samples_is_not_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "h.db")
    _store(db)
    assert main(["trend", "pump1.speed", "--db", db, "--csv"]) == 0
    streams = capsys.readouterr()
    assert streams.out == "time,pump1.speed\n"
    assert "0 samples of pump1.speed" in streams.err


def test_trend_csv_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "h.db")
    _store(db)
    window = ["--since", SINCE_ISO, "--until", "2026-02-01T00:10:00+00:00"]
    capsys.readouterr()
    assert main(["trend", "tank1.level", "--db", db, "--csv", *window]) == 0
    streams = capsys.readouterr()
    csv_file = tmp_path / "trend.csv"
    csv_file.write_text(streams.out, encoding="utf-8")
    table = read_table(csv_file)
    assert table.columns == ["tank1.level"]
    assert len(table.values) == 120  # every 5 s for 10 min
    assert "120 samples of tank1.level" in streams.err

    png, svg = tmp_path / "level.png", tmp_path / "level.svg"
    assert main(["trend", "tank1.level", "--db", db, "--plot", str(png), *window]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["trend", "tank1.level", "--db", db, "--plot", str(svg), *window]) == 0
    assert "<svg" in svg.read_text(encoding="utf-8")
    assert main(["trend", "tank1.level", "--db", db, "--plot", str(tmp_path / "x.gif")]) == 2
    assert ".png or .svg" in capsys.readouterr().err


def test_time_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "h.db")
    _store(db)
    assert (
        main(["trend", "tank1.level", "--db", db, "--since", UNTIL_ISO, "--until", SINCE_ISO]) == 2
    )
    assert "is not before --until" in capsys.readouterr().err
    # --since as a duration back from --until
    assert main(["trend", "tank1.level", "--db", db, "--since", "1m", "--until",
                 "2026-02-01T00:10:00+00:00", "--csv"]) == 0  # fmt: skip
    assert len(capsys.readouterr().out.splitlines()) == 1 + 12
    with pytest.raises(SystemExit):
        main(["trend", "tank1.level", "--db", db, "--since", "yesterday"])


def test_parquet_without_pyarrow_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "h.db")
    _store(db)
    out = tmp_path / "h.parquet"
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    assert _export(db, out, "--format", "parquet") == 1
    assert "pip install pyarrow" in capsys.readouterr().err
    assert not out.exists()


def test_parquet_round_trip(tmp_path: Path) -> None:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    db = str(tmp_path / "h.db")
    _store(db)
    out = tmp_path / "h.parquet"
    assert _export(db, out, "--format", "parquet") == 0
    table = pq.read_table(out)
    assert table.column_names == ["time", "tank1.level", "pump1.flow"]
    store = Store(db)
    try:
        expected = history_table(store, ["tank1.level", "pump1.flow"], T0, T0 + 3600)
    finally:
        store.close()
    assert table.num_rows == len(expected)


def test_parquet_needs_an_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "h.db")
    _store(db)
    argv = ["history", "export", "--points", "tank1.level", "--db", db, "--format", "parquet"]
    assert main(argv) == 2
    assert "needs --output" in capsys.readouterr().err
