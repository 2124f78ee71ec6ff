"""``plantguard demo`` and ``plantguard run``: the gateway in the foreground.

The engine, the store and SQLAlchemy are imported by the handlers: building the
parser for another command costs none of them.  The demo checks its two ports
before its store is created, so a busy port leaves no database behind.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreUnreachable, ensure_port_free, one_line
from ..hookspecs import DemoOptions
from .common import DEMO_DB, SubParsers, add_db_argument

if TYPE_CHECKING:
    from ..config import LoadedSite
    from ..hookspecs import DemoSite
    from ..host import PluginHost
    from ..store import Store

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    demo = sub.add_parser("demo", help="run a simulated plant with the embedded defaults")
    demo.add_argument("--opcua-port", type=int, default=4840)
    demo.add_argument("--modbus-port", type=int, default=5020)
    add_db_argument(demo, DEMO_DB)
    demo.add_argument("--duration", type=float, metavar="SECONDS", help="stop by itself")
    demo.add_argument("--scenario", choices=["cycle", "none"], default="cycle")
    demo.add_argument(
        "--mqtt",
        metavar="HOST:PORT",
        type=_broker_address,
        help="also publish the demo to this MQTT broker: Sparkplug B edge node 'demo' of "
        "group 'plantguard-demo', and Home Assistant MQTT discovery",
    )
    demo.add_argument("--quiet", action="store_true", help="no periodic value lines")
    demo.add_argument(
        "--site-out",
        type=Path,
        metavar="FILE",
        help="once serving, write the demo's site file (its ports and database) here, so "
        "commands that take a site file work on the demo",
    )
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", help="run the gateway for a site file")
    run.add_argument("site", help="site file (YAML)")
    add_db_argument(run, None)
    run.add_argument("--duration", type=float, metavar="SECONDS", help="stop by itself")
    run.add_argument("--quiet", action="store_true", help="no periodic value lines")
    run.set_defaults(func=_run)


def _broker_address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:1883)")
    return text


def _demo(args: argparse.Namespace, host: PluginHost) -> int:
    from ..build import store_issue
    from ..config import ConfigError, parse_site

    db = args.db
    if args.site_out is not None:
        if 0 in (args.opcua_port, args.modbus_port):
            print("plantguard: --site-out needs fixed ports (not 0)", file=sys.stderr)
            return 2
        if "://" not in db:  # the written site file works from any directory
            db = str(Path(db).expanduser().resolve())
    # The demo plant is a plugin's (plantguard_demo_site): the core names none.
    demo = host.demo_site(
        DemoOptions(
            opcua_port=args.opcua_port,
            modbus_port=args.modbus_port,
            db=db,
            scenario=args.scenario,
            mqtt=args.mqtt,
        )
    )
    loaded = parse_site(demo.text, "<embedded demo site>", host)
    if (issue := store_issue(loaded, db)) is not None:
        raise ConfigError([issue])
    _ensure_demo_ports_free(loaded, args)  # before serve() creates the store
    return serve(
        loaded, host, db, args.duration, quiet=args.quiet, demo=demo, site_out=args.site_out
    )


#: The demo's listening services: (service, --option value, what listens, where it is set).
_DEMO_LISTENERS = (
    ("opcua", "opcua_port", "the OPC UA server", "services.opcua.port; --opcua-port for the demo"),
    (
        "sim",
        "modbus_port",
        "the plant simulator (Modbus TCP)",
        "services.sim.port; --modbus-port for the demo",
    ),
)


def _ensure_demo_ports_free(loaded: LoadedSite, args: argparse.Namespace) -> None:
    """:class:`~plantguard.errors.PortInUse` (status 4) if a port the demo listens on is
    taken.  The services check again when they bind (a port can be taken in between);
    this check comes first so that a busy port creates no store."""
    for service, option, what, setting in _DEMO_LISTENERS:
        settings = loaded.site.services.get(service) or {}
        host = str(settings.get("host", "127.0.0.1"))
        ensure_port_free(host, int(getattr(args, option)), what=what, setting=setting)


def _run(args: argparse.Namespace, host: PluginHost) -> int:
    from ..build import store_issue
    from ..config import ConfigError, load_site

    loaded = load_site(args.site, host)
    # What `plantguard check` says of the store, before it is opened.
    if (issue := store_issue(loaded, args.db)) is not None:
        raise ConfigError([issue])
    return serve(loaded, host, args.db or loaded.site.store.url, args.duration, quiet=args.quiet)


def serve(
    loaded: LoadedSite,
    host: PluginHost,
    db: str,
    duration: float | None,
    *,
    quiet: bool,
    demo: DemoSite | None = None,
    site_out: Path | None = None,
) -> int:
    """Run the engine until Ctrl-C, SIGTERM or ``duration``; everything flushed on the way out.

    ``demo``: run the demo plant of :meth:`PluginHost.demo_site`, seeding its store;
    ``site_out``: write its site file there once the gateway serves.
    A setting a plugin refuses raises :class:`~plantguard.config.ConfigError` (as
    ``plantguard check`` shows it); a store that cannot be opened raises
    :class:`~plantguard.errors.StoreUnreachable` (status 3), a service that cannot
    start :class:`~plantguard.build.StartError` (1) or a
    :class:`~plantguard.errors.PortInUse` (4): ``main()`` says which.
    """
    import asyncio

    import sqlalchemy as sa

    from ..auth import DEMO_USERS, ensure_users
    from ..store import Store
    from ..store.lease import LeaseHeld
    from .db import DbError
    from .db import _create_schema as create_schema

    try:  # a PostgreSQL schema the URL names is created, as `plantguard db init` does
        if create_schema(db):
            print(f"plantguard: created the schema of {_shown(db)}", file=sys.stderr)
    except DbError as exc:
        print(f"plantguard: {exc}", file=sys.stderr)
        return 1
    try:
        store = Store(db)
    except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
        reason = one_line(getattr(exc, "orig", None) or exc)
        raise StoreUnreachable(
            f"cannot open the store {_shown(db)}: {reason} "
            "(is the database server running, and is --db right?)"
        ) from exc
    try:
        store.lease.acquire(
            f"plantguard {'run' if demo is None else 'demo'}, site {loaded.site.id}"
        )
    except LeaseHeld as exc:
        store.close()
        raise LeaseHeld(f"{exc.holder}; one gateway per database (or schema)") from None
    if demo is not None:  # the demo's users viewer, operator, engineer (password = name)
        refusal = _not_a_demo_store(store, loaded)
        if refusal:
            store.close()
            print(f"plantguard: {db}: {refusal}; give the demo its own --db", file=sys.stderr)
            return 1
        ensure_users(store.users, DEMO_USERS)
        demo.seed(store, loaded.site)
    try:
        written = (site_out, demo.text) if demo is not None and site_out is not None else None
        return asyncio.run(
            _serve(
                loaded, host, store, duration, quiet=quiet, demo=demo is not None, site_out=written
            )
        )
    finally:
        store.close()


def _shown(db: str) -> str:
    """The store's URL without its password."""
    import sqlalchemy as sa

    from ..store import database_url

    try:
        return sa.make_url(database_url(db)).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "given"


def _write_site(path: Path, text: str) -> None:
    """Write the site file whole (a reader never sees half of it), then say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(
        "# The site file of a running `plantguard demo` (written by --site-out).\n" + text,
        encoding="utf-8",
    )
    partial.replace(path)
    print(f"plantguard: demo site file written to {path}", flush=True)


def _not_a_demo_store(store: Store, loaded: LoadedSite) -> str | None:
    """Why ``store`` is not the demo's (None if it is, or is new).

    The demo adds users whose passwords are their names: into a real site's
    store that would be a door anyone can open.  A store is the demo's when
    its users are the demo users with the demo passwords and its points are
    the demo site's.
    """
    import sqlalchemy as sa

    from ..auth import DEMO_USERS, verify_password
    from ..store.schema import points as points_table

    demo_names = {name for name, _ in DEMO_USERS}
    users = store.users.list_users()
    others = sorted(u.name for u in users if u.name not in demo_names)
    if others:
        return f"it holds users of a real site ({', '.join(others[:5])})"
    for user in users:
        if not verify_password(user.name, user.password_hash):
            return f"its user {user.name!r} has a password of its own"
    known = {p.id for p in loaded.site.points}
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(points_table.c.point_id)).scalars().all()
    foreign = sorted(set(stored) - known)
    if foreign:
        return f"it holds another site's points ({', '.join(foreign[:5])})"
    return None


async def _serve(
    loaded: LoadedSite,
    host: PluginHost,
    store: Store,
    duration: float | None,
    *,
    quiet: bool,
    demo: bool,
    site_out: tuple[Path, str] | None = None,
) -> int:
    import asyncio

    from ..console import Console
    from ..engine import Engine

    engine = Engine(loaded, host, store)  # ConfigError: what `plantguard check` reports
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    console = Console(engine, store.url, quiet=quiet, demo=demo)
    runner = asyncio.create_task(engine.run(stop))
    ready = asyncio.create_task(engine.ready.wait())
    await asyncio.wait([runner, ready], return_when=asyncio.FIRST_COMPLETED)
    console_task = None
    if ready.done():
        if site_out is not None:
            _write_site(*site_out)
        console.announce()
        console_task = asyncio.create_task(console.run())
    else:
        ready.cancel()
    try:
        await runner
    finally:
        if console_task is not None:
            console_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await console_task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("plantguard: stopped cleanly; history and alarm journal flushed.", flush=True)
    return 0
