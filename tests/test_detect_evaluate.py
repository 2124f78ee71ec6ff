"""``plantguard detect evaluate`` and ``plantguard_rules.evaluate``: flags against labels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from plantguard.cli import main
from plantguard_rules.evaluate import Evaluation, episodes, evaluate, read_labels

LABELS = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0], dtype=bool)
FLAGS = np.array([1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1], dtype=bool)


def test_pointwise_counts_rates_and_episode_delays() -> None:
    r = evaluate(FLAGS, LABELS)
    assert (r.tp, r.fp, r.tn, r.fn) == (2, 4, 3, 3)
    assert r.f1 == pytest.approx(4 / 11)
    assert r.far == pytest.approx(4 / 7)
    assert r.mar == pytest.approx(3 / 5)
    assert [(e.start, e.end, e.delay) for e in r.episodes] == [(2, 5, 1), (7, 9, None)]
    assert r.median_delay == 1.0
    # flag runs touching no labelled row: row 0 and rows 10–11 (row 5 continues a detection)
    assert r.false_alarm_episodes == 2
    assert episodes(np.zeros(3, dtype=bool)) == []


def test_skip_keeps_row_numbers_and_pooling_sums_counts() -> None:
    r = evaluate(FLAGS, LABELS, skip=6)
    assert (r.tp, r.fp, r.tn, r.fn) == (0, 2, 2, 2)
    assert [(e.start, e.end) for e in r.episodes] == [(7, 9)]
    pooled = Evaluation.pooled([evaluate(FLAGS, LABELS), r])
    assert (pooled.tp, pooled.fp, pooled.tn, pooled.fn) == (2, 6, 5, 5)
    assert len(pooled.episodes) == 3
    assert pooled.to_json()["episodes"][2] == {"start": 7, "end": 9, "delay_rows": None}
    with pytest.raises(ValueError, match="3 flags against 2 labels"):
        evaluate(FLAGS[:3], LABELS[:2])


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_fit_score_evaluate_on_a_labelled_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(700, 1))
    x = np.hstack([f, 2 * f, -f]) + rng.normal(0, 0.1, (700, 3))
    labels = np.zeros(700, dtype=int)
    x[500:600, 2] += 1.5
    labels[500:600] = 1
    data = _write(
        tmp_path / "data.csv",
        ["time", "a", "b", "c", "anomaly"],
        [[i, *row, lab] for i, (row, lab) in enumerate(zip(x.tolist(), labels, strict=True))],
    )
    train = _write(tmp_path / "train.csv", ["a", "b", "c"], x[:300].tolist())
    model, flags = tmp_path / "m.json", tmp_path / "flags.csv"
    assert main(["detect", "fit", "--input", str(train), "--output", str(model)]) == 0
    score = ["detect", "score", "--model", str(model), "--input", str(data)]
    assert main([*score, "--output", str(flags)]) == 0
    capsys.readouterr()
    report = tmp_path / "out" / "report.json"
    args = ["detect", "evaluate", "--flags", str(flags), "--labels", str(data)]
    code = main([*args, "--label-column", "anomaly", "--skip", "300", "--output", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    saved = json.loads(report.read_text())
    assert saved["skip"] == 300
    assert saved["tp"] + saved["fp"] + saved["tn"] + saved["fn"] == 400
    assert saved["f1"] > 0.8
    [episode] = saved["episodes"]
    assert (episode["start"], episode["end"]) == (500, 600)
    assert f"F1 {saved['f1']:.3f}" in out
    assert f"episode rows 500-599 (100 rows): detected after {episode['delay_rows']} rows" in out


Case = tuple[list[list[object]], list[list[object]], list[str], str]


@pytest.mark.parametrize(
    "case",
    [
        ([["index", "score"], [0, 1]], [["y"], [0]], [], "no 'flag' column"),
        ([["flag"], [2]], [["y"], [0]], [], "line 2, column 'flag': '2' is not 0 or 1"),
        ([["flag"], [1]], [["y"], [0.5]], [], "line 2, column 'y': '0.5' is not 0 or 1"),
        ([["flag"], [1]], [["x", "y"], [0]], ["--label-column", "y"], "line 2: no 'y' field"),
        ([["flag"], [1]], [["y", "z"], ["", 1]], ["--label-column", "y"], "an empty cell"),
        ([["flag"], [1], [0]], [["y"], [0]], [], "has 2 rows"),
        ([["flag"], [1]], [["y", "z"], [0, 1]], [], "name the label column with --label-column"),
        ([["flag"], [1]], [["y", "z"], [0, 1]], ["--label-column", "w"], "missing column 'w'"),
        ([["flag"], [1]], [["y"], [0]], ["--skip", "1"], "--skip 1 leaves no rows of 1"),
    ],
)
def test_unusable_flags_or_labels_exit_2_naming_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    flags, labels, extra, message = case
    f = _write(tmp_path / "f.csv", [str(h) for h in flags[0]], flags[1:])
    lab = _write(tmp_path / "l.csv", [str(h) for h in labels[0]], labels[1:])
    assert main(["detect", "evaluate", "--flags", str(f), "--labels", str(lab), *extra]) == 2
    assert message in capsys.readouterr().err


def test_labels_may_sit_beside_text_columns(tmp_path: Path) -> None:
    lab = _write(tmp_path / "l.csv", ["time", "note", "y"], [[0, "start-up", "1.0"], [1, "", "0"]])
    assert read_labels(lab, "y").tolist() == [True, False]
    with pytest.raises(ValueError, match=r"2 columns \(note, y\): name the label column"):
        read_labels(lab)


def test_a_missing_flags_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = _write(tmp_path / "l.csv", ["y"], [[0]])
    args = ["detect", "evaluate", "--flags", str(tmp_path / "none.csv"), "--labels", str(lab)]
    assert main(args) == 2
    assert "none.csv: cannot read" in capsys.readouterr().err
