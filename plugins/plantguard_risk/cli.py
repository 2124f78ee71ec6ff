"""``plantguard risks …``, ``plantguard hazards …`` and ``plantguard index``.

Commands that change something name their acting user (``--as``, the same
mechanism as the records commands): the role each action needs is the one the
lifecycle requires, and the user is what the journal and the risk points'
change history keep.  Exports go to standard output unless ``--output`` is
given; imports are validated whole.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from plantguard.plugin import (
    CommandContext,
    HazardRow,
    JournalEntry,
    Principal,
    RiskStore,
    Role,
    Store,
    UsageError,
    acting_principal,
    add_actor_argument,
    add_db_argument,
    did_you_mean,
    open_store,
    site_path,
)

from .exchange import (
    SCHEMA_FILES,
    References,
    dump_hazards,
    dump_risks,
    guess_format,
    load_hazards,
    load_risks,
    read_text,
    schema_of,
)
from .gather import gather
from .grading import GRADE_LABELS
from .index import LEVEL_LABELS, IndexSettings, compute
from .lifecycle import ACTIONS, HAZARD_GRADES, OPEN_STATES, STATE_LABELS, STATES, Lifecycle

__all__ = ["configure_hazards", "configure_index", "configure_risks", "run"]

Handler = Callable[[argparse.Namespace, CommandContext], int]
#: The clock of the commands (tests replace it to control time).
clock: Callable[[], float] = time.time


def _db(p: argparse.ArgumentParser, *, json_flag: bool = False) -> None:
    add_db_argument(p, site=True)
    if json_flag:
        p.add_argument("--json", action="store_true", help="machine-readable output")


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--output", type=Path, help="file to write (default: standard output)")
    _db(p)


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path)
    p.add_argument("--format", choices=["json", "csv"], help="default: from the file name")
    _db(p)
    add_actor_argument(p, Role.ENGINEER)


def configure_risks(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="risks_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="risk points with their grade (red, orange, yellow, blue)")
    _db(p, json_flag=True)
    p.set_defaults(handler=_risks_list)
    p = sub.add_parser("show", help="one risk point with its change history")
    p.add_argument("risk")
    _db(p, json_flag=True)
    p.set_defaults(handler=_risks_show)
    p = sub.add_parser("import", help="import risk points (JSON or CSV), all or nothing")
    _import_args(p)
    p.set_defaults(handler=_risks_import)
    p = sub.add_parser("export", help="export the risk register")
    _export_args(p)
    p.set_defaults(handler=_risks_export)
    p = sub.add_parser("schemas", help="write the JSON Schemas of risk points and hidden dangers")
    p.add_argument("--output", type=Path, default=Path("docs/schemas"))
    p.set_defaults(handler=_schemas)


def _actor(p: argparse.ArgumentParser, action: str) -> None:
    _db(p)
    add_actor_argument(p, ACTIONS[action].role)
    p.add_argument("--comment", default="", help="journalled with the transition")


def configure_hazards(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hazards_command", metavar="ACTION", required=True)
    p = sub.add_parser("report", help="report a hidden danger (operator or above)")
    p.add_argument("title")
    p.add_argument("--description", default="")
    p.add_argument("--risk", help="the risk point it belongs to")
    p.add_argument("--device")
    p.add_argument("--point")
    p.add_argument("--area", default="")
    _db(p)
    add_actor_argument(p, Role.OPERATOR)
    p.set_defaults(handler=_report)
    p = sub.add_parser("list", help="hidden dangers and candidates")
    p.add_argument("--state", choices=STATES, action="append", help="repeatable")
    p.add_argument("--open", action="store_true", help="only those not closed or dismissed")
    _db(p, json_flag=True)
    p.set_defaults(handler=_list)
    p = sub.add_parser("show", help="one hidden danger with its journal")
    p.add_argument("hazard")
    _db(p, json_flag=True)
    p.set_defaults(handler=_show)
    _transitions(sub)
    p = sub.add_parser("import", help="import hidden dangers (JSON or CSV), all or nothing")
    _import_args(p)
    p.set_defaults(handler=_hazards_import)
    p = sub.add_parser("export", help="export hidden dangers")
    _export_args(p)
    p.set_defaults(handler=_hazards_export)


def _transitions(sub: Any) -> None:
    p = sub.add_parser("accept", help="accept a rule's candidate as a reported hidden danger")
    p.add_argument("hazard")
    _actor(p, "accept")
    p = sub.add_parser("dismiss", help="dismiss a candidate or a report (engineer)")
    p.add_argument("hazard")
    p.add_argument("--reason", required=True)
    _actor(p, "dismiss")
    p = sub.add_parser("assess", help="grade a hidden danger: general or major (engineer)")
    p.add_argument("hazard")
    p.add_argument("--grade", choices=sorted(HAZARD_GRADES), required=True)
    _actor(p, "assess")
    p = sub.add_parser("assign", help="assign its rectification (engineer)")
    p.add_argument("hazard")
    p.add_argument("--measures", required=True)
    p.add_argument("--assignee", required=True, help="the person responsible")
    p.add_argument("--deadline", required=True, help="ISO time with zone, a date, or 7d / 12h")
    p.add_argument("--funds", type=float, help="money set aside for it")
    _actor(p, "assign")
    p = sub.add_parser("rectify", help="record the rectification done (operator or above)")
    p.add_argument("hazard")
    p.add_argument("--done", required=True, help="what was done")
    p.add_argument("--evidence", default="", help="photo, document or record reference")
    _actor(p, "rectify")
    p = sub.add_parser("verify", help="verify and close (an engineer who did not rectify it)")
    p.add_argument("hazard")
    p.add_argument("--evidence", required=True)
    _actor(p, "verify")
    p = sub.add_parser("reject", help="reject the rectification back (engineer, not the rectifier)")
    p.add_argument("hazard")
    p.add_argument("--reason", required=True)
    _actor(p, "reject")
    for name in ACTIONS:
        sub.choices[name].set_defaults(handler=_transition, action=name)


def configure_index(parser: argparse.ArgumentParser) -> None:
    _db(parser, json_flag=True)
    parser.add_argument("--at", help="evaluate at this ISO time (default: now)")


def run(args: argparse.Namespace, context: CommandContext) -> int:
    handler: Handler = args.handler
    return handler(args, context)


def run_index(args: argparse.Namespace, context: CommandContext) -> int:
    now = _parse_time(args.at) if args.at else clock()
    settings = _index_settings(args, context)
    with open_store(args) as store:
        result = compute(gather(store, now, settings), settings)
    if args.json:
        _print_json({"index": result.index, "level": result.level, "components": result.components})
        return 0
    print(f"early-warning index {result.index:.1f}  {LEVEL_LABELS[result.level]}")
    for name, value in sorted(result.components.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24} {value:8.2f}")
    return 0


def _index_settings(args: argparse.Namespace, context: CommandContext) -> IndexSettings:
    path = site_path(args)
    if path is None:
        return IndexSettings()
    options = context.load_site(path).services.get("safety_index")
    return options if isinstance(options, IndexSettings) else IndexSettings()


# --- helpers -------------------------------------------------------------------------


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([dhm])$")
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0}


def _parse_time(text: str) -> float:
    """An ISO time with a zone, a date (its end, UTC), or a duration from now (``7d``)."""
    text = text.strip()
    if match := _DURATION.match(text):
        return clock() + float(match[1]) * _UNIT[match[2]]
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC).timestamp()
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"not a time: {text!r} (ISO time with zone, a date, or 7d / 12h)"
        ) from None
    if when.tzinfo is None:
        raise UsageError(f"time {text!r} needs a zone (…Z or +08:00)")
    return when.timestamp()


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _references(store: Store) -> References:
    refs = store.records.references()
    return References(
        areas={d.area for d in store.records.devices() if d.area},
        devices=set(refs.devices),
        points=set(refs.points),
        plans=set(refs.plans),
        risks={r.id for r in RiskStore(store.engine).risks()},
    )


# --- risks ---------------------------------------------------------------------------


def _risks_list(args: argparse.Namespace, _context: CommandContext) -> int:
    with open_store(args) as store:
        rows = RiskStore(store.engine).risks()
    if args.json:
        _print_json([asdict(r) for r in rows])
        return 0
    print(f"{'id':<20} {'grade':<7} {'score':>7} {'level':<9} {'responsible':<16} name")
    for r in rows:
        print(f"{r.id:<20} {r.grade:<7} {r.score:7.1f} {r.level:<9} {r.responsible:<16} {r.name}")
    return 0


def _risks_show(args: argparse.Namespace, _context: CommandContext) -> int:
    with open_store(args) as store:
        risks = RiskStore(store.engine)
        row = risks.risk(args.risk)
        if row is None:
            raise UsageError(did_you_mean("risk point", args.risk, (r.id for r in risks.risks())))
        changes = risks.risk_changes(args.risk)
    if args.json:
        _print_json({"risk": asdict(row), "changes": [asdict(c) for c in changes]})
        return 0
    print(f"{row.id}: {row.name} — {GRADE_LABELS[row.grade]}")  # type: ignore[index]
    print(f"  {row.method} {row.factors} = {row.score:g}; level {row.level}, {row.responsible}")
    for measure in row.measures:
        print(f"  measure: {measure}")
    for c in changes:
        print(f"  {c.time:%Y-%m-%d %H:%M} {c.user}: {c.field} {c.old} → {c.new}")
    return 0


def _risks_import(args: argparse.Namespace, _context: CommandContext) -> int:
    fmt = guess_format(args.file, args.format)
    with open_store(args) as store:
        principal = acting_principal(store, args, "import risk points")
        items = load_risks(read_text(args.file), fmt, _references(store), str(args.file))
        count = RiskStore(store.engine).upsert_risks([i.row() for i in items], principal.name)
    print(f"imported {count} risk points")
    return 0


def _risks_export(args: argparse.Namespace, _context: CommandContext) -> int:
    with open_store(args) as store:
        rows = RiskStore(store.engine).risks()
    _write(dump_risks(rows, args.format), args.output)
    return 0


def _schemas(args: argparse.Namespace, _context: CommandContext) -> int:
    args.output.mkdir(parents=True, exist_ok=True)
    for kind, name in SCHEMA_FILES.items():
        (args.output / name).write_text(schema_of(kind), encoding="utf-8")
    print(f"wrote {', '.join(SCHEMA_FILES.values())} to {args.output}")
    return 0


# --- hazards -------------------------------------------------------------------------


def _lifecycle(store: Store) -> Lifecycle:
    return Lifecycle(RiskStore(store.engine), clock)


def _report(args: argparse.Namespace, _context: CommandContext) -> int:
    with open_store(args) as store:
        principal = acting_principal(store, args, "report a hidden danger")
        refs = _references(store)
        _check_reference(args.risk, refs.risks, "risk point")
        _check_reference(args.device, refs.devices, "device")
        _check_reference(args.point, refs.points, "point")
        hazard = _lifecycle(store).report(
            principal,
            args.title,
            description=args.description,
            risk_id=args.risk,
            area=args.area,
            device_id=args.device,
            point_id=args.point,
        )
    print(hazard.id)
    return 0


def _check_reference(value: str | None, known: set[str], what: str) -> None:
    if value is not None and value not in known:
        raise UsageError(did_you_mean(what, value, known))


def _transition(args: argparse.Namespace, _context: CommandContext) -> int:
    name: str = args.action
    with open_store(args) as store:
        principal = acting_principal(store, args, f"{name} a hidden danger")
        hazard = _apply(_lifecycle(store), principal, name, args)
    print(f"{hazard.id}: {STATE_LABELS[hazard.state]}")
    return 0


def _apply(life: Lifecycle, who: Principal, name: str, args: argparse.Namespace) -> HazardRow:
    h, comment = args.hazard, args.comment
    if name == "accept":
        return life.accept(who, h, comment)
    if name == "dismiss":
        return life.dismiss(who, h, args.reason)
    if name == "assess":
        return life.assess(who, h, args.grade, comment)
    if name == "assign":
        return life.assign(
            who,
            h,
            measures=args.measures,
            assignee=args.assignee,
            deadline=_parse_time(args.deadline),
            funds=args.funds,
            comment=comment,
        )
    if name == "rectify":
        return life.rectify(who, h, args.done, args.evidence)
    if name == "verify":
        return life.verify(who, h, args.evidence, comment)
    return life.reject(who, h, args.reason)


def _list(args: argparse.Namespace, _context: CommandContext) -> int:
    states = args.state or ([*OPEN_STATES, "candidate"] if args.open else None)
    with open_store(args) as store:
        rows = RiskStore(store.engine).hazards(states)
    if args.json:
        _print_json([asdict(r) for r in rows])
        return 0
    print(f"{'id':<22} {'state':<10} {'grade':<8} {'deadline':<21} title")
    for r in rows:
        print(f"{r.id:<22} {r.state:<10} {r.grade or '-':<8} {_when(r.deadline):<21} {r.title}")
    return 0


def _show(args: argparse.Namespace, _context: CommandContext) -> int:
    with open_store(args) as store:
        risks = RiskStore(store.engine)
        row = risks.hazard(args.hazard)
        if row is None:
            known = (h.id for h in risks.hazards())
            raise UsageError(did_you_mean("hidden danger", args.hazard, known))
        journal = risks.journal(args.hazard)
    if args.json:
        _print_json({"hazard": asdict(row), "journal": [asdict(e) for e in journal]})
        return 0
    grade = HAZARD_GRADES.get(row.grade, "not assessed")
    print(f"{row.id}: {row.title} — {STATE_LABELS[row.state]}, {grade}")
    if row.assignee:
        print(f"  rectification: {row.measures} — {row.assignee}, by {_when(row.deadline)}")
    for e in journal:
        before = e.state_before or "-"
        print(f"  {_when(e.time)} {e.user}: {e.action} {before} → {e.state_after} {e.comment}")
    return 0


def _hazards_import(args: argparse.Namespace, _context: CommandContext) -> int:
    fmt = guess_format(args.file, args.format)
    with open_store(args) as store:
        principal = acting_principal(store, args, "import hidden dangers")
        items = load_hazards(read_text(args.file), fmt, _references(store), str(args.file))
        risks = RiskStore(store.engine)
        taken = {h.id for h in risks.hazards()} & {i.id for i in items}
        if taken:
            raise UsageError(f"hidden dangers already in the store: {', '.join(sorted(taken))}")
        now = clock()
        rows = [i.row(now) for i in items]
        entries = [
            JournalEntry(r.id, now, "import", "", r.state, principal.name, str(args.file))
            for r in rows
        ]
        risks.add_hazards(rows, entries)
    print(f"imported {len(rows)} hidden dangers")
    return 0


def _hazards_export(args: argparse.Namespace, _context: CommandContext) -> int:
    with open_store(args) as store:
        rows = RiskStore(store.engine).hazards()
    _write(dump_hazards(rows, args.format), args.output)
    return 0
