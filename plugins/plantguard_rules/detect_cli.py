"""``plantguard detect fit|score|evaluate``: offline training and analysis on CSV files.

``fit`` trains a multivariate model on normal-operation rows and writes it as
JSON (the file says what it was trained on).  Without ``--method`` it makes the
automatic choice of :mod:`plantguard_rules.autofit` and prints the candidates'
held-out figures; with one it fits that method as before.  ``score`` replays a
data file through the rule host with that model (:mod:`plantguard_rules.replay`)
and writes one row per input row: ``index,score,flag,reason``.  ``evaluate``
compares such flags with labelled incidents (:mod:`plantguard_rules.evaluate`).
Exit status 2 with a message naming the column or line for unusable input.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

from plantguard.plugin import CommandContext

from .autofit import FAR, fit_group, table_lines
from .csvdata import CsvError, read_table
from .ensemble import load_model
from .evaluate import evaluate, read_flags, read_labels
from .mvmodels import LIMIT_RULES, METHODS, FitError
from .replay import replay_model

__all__ = ["configure", "run"]


def _smoothing(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _rows(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more rows, got {text}")
    return value


def _rate(text: str) -> float:
    """A false-alarm rate: ``0.01`` or ``1%``."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (e.g. 0.01 or 1%)") from None
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"must be between 0 and 50 %, got {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="detect_command", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="train a model on normal-operation rows")
    fit.add_argument("--input", required=True, type=Path, metavar="TRAIN.csv")
    fit.add_argument("--output", required=True, type=Path, metavar="MODEL.json")
    fit.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="detection method (default: chosen automatically from the training rows, "
        "see docs/detection.md)",
    )
    fit.add_argument(
        "--far",
        type=_rate,
        default=FAR,
        metavar="RATE",
        help="false-alarm target of the automatic choice, as a share of rows "
        f"(default {FAR:g}, i.e. {100 * FAR:g} %%; also written 1%%)",
    )
    fit.add_argument(
        "--limits",
        choices=LIMIT_RULES,
        default=None,
        help="with --method: checked (default): the lowest limit whose value from one half "
        "of the training rows flags at most 1 %% of the other half; method: the method's own "
        "calibration",
    )
    fit.add_argument(
        "--smoothing",
        type=_smoothing,
        default=None,
        metavar="LAMBDA",
        help="EWMA smoothing of the statistic, 0 < λ ≤ 1 (default: the method's)",
    )
    fit.add_argument(
        "--hold",
        type=_rows,
        default=None,
        metavar="ROWS",
        help="rows a flag is held after the statistic falls back (default: the method's)",
    )
    fit.add_argument(
        "--exclude",
        default="",
        metavar="COL,COL",
        help="columns that are not measurements (labels, ids)",
    )
    score = sub.add_parser("score", help="score data rows with a model")
    score.add_argument("--model", required=True, type=Path, metavar="MODEL.json")
    score.add_argument("--input", required=True, type=Path, metavar="DATA.csv")
    score.add_argument("--output", required=True, type=Path, metavar="FLAGS.csv")
    ev = sub.add_parser("evaluate", help="F1, false/missed alarms and delays against labels")
    ev.add_argument("--flags", required=True, type=Path, metavar="FLAGS.csv")
    ev.add_argument("--labels", required=True, type=Path, metavar="LABELS.csv")
    ev.add_argument(
        "--label-column",
        default=None,
        metavar="COLUMN",
        help="0/1 column of LABELS.csv (default: its only column besides time)",
    )
    ev.add_argument(
        "--skip",
        type=_rows,
        default=0,
        metavar="ROWS",
        help="leading rows not counted (e.g. the rows the model was trained on)",
    )
    ev.add_argument("--output", type=Path, default=None, metavar="REPORT.json")


def run(args: argparse.Namespace, context: CommandContext) -> int:
    # Files in, files out: no site, so the context (the plugin host) is not needed.
    try:
        if args.detect_command == "fit":
            return _fit(args)
        if args.detect_command == "evaluate":
            return _evaluate(args)
        return _score(args)
    except (CsvError, FitError, ValueError) as exc:
        print(f"plantguard detect: {exc}", file=sys.stderr)
        return 2


def _fit(args: argparse.Namespace) -> int:
    table = read_table(args.input)
    excluded = {c.strip() for c in args.exclude.split(",") if c.strip()}
    if unknown := excluded - set(table.columns):
        raise CsvError(f"{args.input}: --exclude names unknown column {', '.join(sorted(unknown))}")
    names = [c for c in table.columns if c not in excluded]
    x = table.select(names, str(args.input))
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        row, col = bad[0]
        raise CsvError(
            f"{args.input}: line {table.lines[row]}, column {names[col]!r}: "
            "missing value (training rows must be complete)"
        )
    trained_on = {
        "file": str(args.input),
        "sha256": hashlib.sha256(args.input.read_bytes()).hexdigest(),
        "columns": names,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    fit = fit_group(
        x,
        names,
        args.method,
        limits=args.limits,
        smoothing=args.smoothing,
        hold=args.hold,
        far=args.far,
        trained_on=trained_on,
    )
    model, auto = fit.model, fit.auto
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(model.dumps(), encoding="utf-8")
    if auto is not None:
        print("\n".join(table_lines(auto)))
    if fit.warning is not None:
        print(f"plantguard detect: warning: {args.input}: {fit.warning}", file=sys.stderr)
    limits = ", ".join(f"{k} {v:.4g}" for k, v in model.limits.items())
    checked = model.options.get("checked")
    if checked is not None and not checked["holds"] and auto is None:
        print(
            f"plantguard detect: warning: no candidate limit holds 1 % from one half of "
            f"{args.input} to the other ({100 * checked['held_out_alarm_rate']:.1f} % at the "
            "largest, which is used): the training rows are not one steady period",
            file=sys.stderr,
        )
    rule = "automatic choice" if auto is not None else args.limits or "checked"
    print(
        f"{args.output}: method {model.method}, {len(names)} variables, {x.shape[0]} rows, "
        f"limits {limits}, hold {model.hold} ({rule})"
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    try:
        model = load_model(json.loads(args.model.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ValueError(f"{args.model}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{args.model}: not JSON: {exc}") from exc
    table = read_table(args.input)
    x = table.select(model.variables, str(args.input))
    scores = replay_model(args.model.resolve(), model.variables, x)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "score", "flag", "reason"])
        for i, s in enumerate(scores):
            w.writerow([i, "" if math.isnan(s.score) else f"{s.score:.6g}", int(s.flag), s.reason])
    flagged = sum(s.flag for s in scores)
    print(f"{args.output}: {len(scores)} rows, {flagged} flagged ({model.method})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    flags = read_flags(args.flags)
    labels = read_labels(args.labels, args.label_column)
    if flags.size != labels.size:
        raise CsvError(
            f"{args.flags} has {flags.size} rows, {args.labels} has {labels.size}: "
            "flags and labels must be row for row"
        )
    if args.skip >= flags.size:
        raise CsvError(f"--skip {args.skip} leaves no rows of {flags.size}")
    result = evaluate(flags, labels, skip=args.skip)
    print(
        f"rows {flags.size - args.skip}: F1 {result.f1:.3f}, false alarms (FAR) "
        f"{100 * result.far:.2f} %, missed alarms (MAR) {100 * result.mar:.2f} % "
        f"(TP {result.tp}, FP {result.fp}, TN {result.tn}, FN {result.fn}); "
        f"{result.false_alarm_episodes} false-alarm runs"
    )
    for e in result.episodes:
        a, b = e.start, e.end
        delay = "not detected" if e.delay is None else f"detected after {e.delay} rows"
        print(f"  episode rows {a}-{b - 1} ({b - a} rows): {delay}")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        report = {"flags": str(args.flags), "labels": str(args.labels), "skip": args.skip}
        args.output.write_text(json.dumps(report | result.to_json(), indent=1), encoding="utf-8")
    return 0
