"""``plantguard detect fit|score``: offline training and analysis on CSV files.

``fit`` trains a multivariate model on normal-operation rows and writes it as
JSON (the file says what it was trained on); ``score`` replays a data file
through the rule host with that model (:mod:`plantguard_rules.replay`) and
writes one row per input row: ``index,score,flag,reason``.  Exit status 2 with
a message naming the column or line for unusable input.
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

from .csvdata import CsvError, read_table
from .mvmodels import (
    LIMIT_RULES,
    METHODS,
    RECOMMENDED,
    FitError,
    MultivariateModel,
    fit_configured,
)
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


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="detect_command", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="train a model on normal-operation rows")
    fit.add_argument("--input", required=True, type=Path, metavar="TRAIN.csv")
    fit.add_argument("--output", required=True, type=Path, metavar="MODEL.json")
    fit.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help=f"detection method (default: the recommended {RECOMMENDED})",
    )
    fit.add_argument(
        "--limits",
        choices=LIMIT_RULES,
        default="checked",
        help="checked (default): the lowest limit whose value from one half of the training "
        "rows flags at most 1 %% of the other half — the rule the detection benchmark "
        "measures; method: the method's own calibration",
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


def run(args: argparse.Namespace, context: CommandContext) -> int:
    # Files in, files out: no site, so the context (the plugin host) is not needed.
    try:
        if args.detect_command == "fit":
            return _fit(args)
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
    method = args.method or RECOMMENDED
    trained_on = {
        "file": str(args.input),
        "sha256": hashlib.sha256(args.input.read_bytes()).hexdigest(),
        "columns": names,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    model = fit_configured(
        x,
        names,
        method,
        limits=args.limits,
        smoothing=args.smoothing,
        hold=args.hold,
        trained_on=trained_on,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(model.dumps(), encoding="utf-8")
    limits = ", ".join(f"{k} {v:.4g}" for k, v in model.limits.items())
    checked = model.options.get("checked")
    if checked is not None and not checked["holds"]:
        print(
            f"plantguard detect: warning: no candidate limit holds 1 % from one half of "
            f"{args.input} to the other ({100 * checked['held_out_alarm_rate']:.1f} % at the "
            "largest, which is used): the training rows are not one steady period",
            file=sys.stderr,
        )
    print(
        f"{args.output}: method {method}, {len(names)} variables, {x.shape[0]} rows, "
        f"limits {limits} ({args.limits})"
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    try:
        model = MultivariateModel.from_json(json.loads(args.model.read_text(encoding="utf-8")))
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
