"""``plantguard alarms list|ack|shelve|journal|kpi``: alarm states, actions, journal, KPIs.

Reads and acts on the store given by ``--db`` (or the ``store.url`` of ``--site`` /
``$PLANTGUARD_SITE``), which must exist: nothing is created or migrated here.  ``ack`` and ``shelve`` go through
the same entry point as OPC UA (:meth:`plantguard.alarms.AlarmManager.act`): the
user is authenticated against the store's users (password from
``PLANTGUARD_PASSWORD`` or a prompt), the role is checked, and the action is
journalled with user, time and comment.  They act on the stored state, so they
refuse while a gateway runs on the store (its lease, :mod:`plantguard.store.lease`):
a running gateway is acted on through OPC UA.
``plantguard alarms --db FILE`` alone lists the alarms, as before.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from .acting import password_for
from .common import SubParsers, add_db_argument, did_you_mean, fmt_time, open_store

if TYPE_CHECKING:
    from ..alarms import AlarmStatus
    from ..host import PluginHost
    from ..kpi import KpiReport
    from ..model import AlarmDefinition
    from ..store import Store

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    alarms = sub.add_parser(
        "alarms", help="alarm states, acknowledge, shelve, the journal and KPIs, from the store"
    )
    add_db_argument(alarms, site=True)
    alarms.add_argument("--json", action="store_true", help="machine-readable output")
    alarms.add_argument("--journal", action="store_true", help="print the journal (as `journal`)")
    alarms.set_defaults(func=_list)
    cmds = alarms.add_subparsers(dest="alarms_command", metavar="ACTION")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = cmds.add_parser(name, help=help_text)
        add_db_argument(p, site=True, suppress=True)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
        return p

    p = command("list", "current state of every alarm")
    p.add_argument("--active", action="store_true", help="only alarms not in normal state")
    p.set_defaults(func=_list)

    for name, help_text in (("ack", "acknowledge an alarm"), ("shelve", "shelve an alarm")):
        p = command(name, help_text)
        p.add_argument("alarm", help="alarm id, e.g. tank1.level.limit")
        p.add_argument(
            "--user",
            required=True,
            help="your user name (password: $PLANTGUARD_PASSWORD or prompt)",
        )
        p.add_argument("--comment", default="", help="why (journalled)")
        if name == "shelve":
            how = p.add_mutually_exclusive_group(required=True)
            how.add_argument("--for", dest="duration", help="timed shelve, e.g. 30m, 2h")
            how.add_argument(
                "--one-shot", action="store_true", help="until it next returns to normal"
            )
            how.add_argument("--unshelve", action="store_true", help="end a shelve")
        p.set_defaults(func=_act, action_name=name)

    p = command("journal", "every transition and action, oldest first")
    p.add_argument("--alarm", help="only this alarm")
    p.add_argument("--since", help="only the last DURATION, e.g. 24h")
    p.set_defaults(func=_journal)

    p = command("kpi", "alarm system KPIs (EEMUA 191 / ISA-18.2)")
    p.add_argument("--since", default="24h", help="period ending now (default 24h)")
    p.set_defaults(func=_kpi)


def _emit_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    print()


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def _status_dict(s: AlarmStatus) -> dict[str, Any]:
    return {
        "alarm": s.alarm_id,
        "state": s.state.value,
        "condition": s.condition,
        "severity": s.severity,
        "message": s.message,
        "active_since": _iso(s.active_since),
        "confirmed": s.confirmed,
        "shelving": s.shelving.value,
        "shelved_until": _iso(s.shelved_until),
        "suppressed": s.suppressed,
        "out_of_service": s.out_of_service,
        "last_user": s.last_user,
        "comment": s.comment,
    }


def _flags(s: AlarmStatus) -> str:
    flags = []
    if s.shelved:
        flags.append(f"shelved({s.shelving.value}) until {fmt_time(s.shelved_until or 0)}")
    if s.suppressed:
        flags.append("suppressed")
    if s.out_of_service:
        flags.append("out-of-service")
    if not s.confirmed:
        flags.append("unconfirmed")
    return " ".join(flags)


def _list(args: argparse.Namespace, host: PluginHost) -> int:
    if getattr(args, "journal", False):
        args.alarm, args.since = None, None
        return _journal(args, host)
    with open_store(args) as store:
        statuses = sorted(store.load_status().items())
    if getattr(args, "active", False):
        statuses = [(a, s) for a, s in statuses if s.state.value != "normal"]
    if args.json:
        _emit_json([_status_dict(s) for _, s in statuses])
        return 0
    # Columns as wide as their longest entry, so long ids never push the rest out of line.
    width = max((len(a) for a, _ in statuses), default=0)
    state_width = max((len(s.state.value) for _, s in statuses), default=0)
    cond_width = max((len(s.condition) for _, s in statuses), default=0)
    for alarm_id, s in statuses:
        print(
            f"{alarm_id:<{width}}  {s.state.value:<{state_width}}  {s.condition:<{cond_width}}  "
            f"{_flags(s)}  {s.message}".rstrip()
        )
    return 0


def _journal(args: argparse.Namespace, host: PluginHost) -> int:
    from ..kpi import parse_duration

    since = time.time() - parse_duration(args.since) if args.since else 0.0
    with open_store(args) as store:
        if args.alarm and (unknown := _unknown_alarm(store, args.alarm)):
            print(f"plantguard: {unknown}", file=sys.stderr)
            return 2
        rows = store.journal(args.alarm, since)
    if args.json:
        _emit_json(
            [
                {
                    "seq": r.seq,
                    "time": _iso(r.time),
                    "timestamp": r.time,
                    "alarm": r.alarm_id,
                    "action": r.action,
                    "transition": f"{r.state_before} -> {r.state_after}",
                    "from": r.state_before,
                    "to": r.state_after,
                    "condition": r.condition,
                    "severity": r.severity,
                    "value": r.value,
                    "message": r.message,
                    "user": r.user,
                    "comment": r.comment,
                    "shelved_until": _iso(r.shelved_until),
                }
                for r in rows
            ]
        )
        return 0
    width = max((len(r.alarm_id) for r in rows), default=0)
    for r in rows:
        comment = f"  “{r.comment}”" if r.comment else ""
        print(
            f"{fmt_time(r.time)}  {r.alarm_id:<{width}}  {r.action:<19} "
            f"{r.state_before} → {r.state_after}  {r.condition:<2} "
            f"{r.user or '-'}  {r.message}{comment}"
        )
    return 0


def _definitions(store: Store) -> list[AlarmDefinition]:
    import sqlalchemy as sa

    from ..model import AlarmDefinition, Priority
    from ..store.schema import alarms as alarms_table

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(alarms_table)).all()
    return [
        AlarmDefinition(
            id=r.alarm_id,
            source_id=r.source_id,
            device_id=r.device_id,
            kind=r.kind,
            rule=r.rule,
            priority=Priority(r.priority),
        )
        for r in rows
    ]


def _unknown_alarm(store: Store, alarm_id: str) -> str | None:
    """None if the store knows ``alarm_id``; else the message, with close matches."""
    known = {d.id for d in _definitions(store)} | set(store.load_status())
    return None if alarm_id in known else did_you_mean("alarm", alarm_id, known)


def _act(args: argparse.Namespace, host: PluginHost) -> int:
    import asyncio

    from ..alarms import Action, AlarmError, AlarmManager
    from ..auth import authenticate
    from ..kpi import parse_duration
    from ..store.lease import LeaseHeld

    password = password_for(args.user)
    with open_store(args) as store:
        try:
            store.lease.check_free()
        except LeaseHeld as exc:
            print(
                f"plantguard: {exc}: act from an OPC UA client or Home Assistant "
                "(the gateway's one entry point), or stop the gateway first",
                file=sys.stderr,
            )
            return 1
        principal = authenticate(store.users, args.user, password)
        if principal is None:
            print("plantguard: wrong user name or password", file=sys.stderr)
            return 1
        if unknown := _unknown_alarm(store, args.alarm):
            print(f"plantguard: {unknown}", file=sys.stderr)
            return 2
        manager = AlarmManager(store, _definitions(store), users=store.users)
        duration = None
        if args.action_name == "ack":
            action = Action.ACKNOWLEDGE
        elif args.unshelve:
            action = Action.UNSHELVE
        elif args.one_shot:
            action = Action.ONE_SHOT_SHELVE
        else:
            action, duration = Action.SHELVE, parse_duration(args.duration)
        try:
            t = asyncio.run(
                manager.act(action, args.alarm, principal, comment=args.comment, duration=duration)
            )
        except AlarmError as exc:
            print(f"plantguard: {exc}", file=sys.stderr)
            return 1
    if getattr(args, "json", False):
        _emit_json(_status_dict(t.status))
    else:
        print(f"{t.alarm_id}: {t.action} by {t.user}: {t.before.value} → {t.after.value}")
    return 0


def _kpi(args: argparse.Namespace, host: PluginHost) -> int:
    from ..kpi import JournalEntry, compute_kpis, parse_duration

    until = time.time()
    since = until - parse_duration(args.since)
    with open_store(args) as store:
        entries = [JournalEntry(r.time, r.alarm_id, r.action) for r in store.journal()]
        statuses = store.load_status()
        priorities = {d.id: int(d.priority) for d in _definitions(store)}
    report = compute_kpis(entries, statuses, priorities, since=since, until=until)
    if args.json:
        _emit_json(report.as_dict())
    else:
        _print_kpis(report, args.since)
    return 0


def _print_kpis(r: KpiReport, period: str) -> None:
    print(f"Alarm KPIs for the last {period} ({fmt_time(r.since)} – {fmt_time(r.until)})")
    print(f"  annunciated alarms      {r.activations}")
    print(
        f"  alarms per 10 min       {r.per_10_min:.2f}   (EEMUA 191: ≤1 very likely acceptable, ≤2 manageable)"
    )
    print(f"  peak per 10 min / 1 min {r.peak_10_min} / {r.peak_1_min}")
    print(
        f"  time in flood           {r.flood_seconds:.0f} s ({r.flood_percent:.2f} %; target <1 %)"
    )
    dist = ", ".join(f"{k} {v:.0f} %" for k, v in r.priority_percent.items()) or "-"
    print(f"  priority distribution   {dist}   (target ≈ low 80, medium 15, high 5)")
    print(f"  standing (active) now   {r.standing}")
    print("  top bad actors:")
    for alarm, n, pct in r.bad_actors or []:
        print(f"    {alarm:<28} {n:>5}  {pct:5.1f} %")
    print("  chattering (≥3 in 60 s):", ", ".join(f"{a} ({n})" for a, n in r.chattering) or "none")
    print(
        "  stale (active > 24 h):  ",
        ", ".join(f"{a} ({s / 3600:.0f} h)" for a, s in r.stale) or "none",
    )
    print("  shelved:                ", ", ".join(str(s["alarm"]) for s in r.shelved) or "none")
    print(
        "  out of service:         ", ", ".join(str(s["alarm"]) for s in r.out_of_service) or "none"
    )
