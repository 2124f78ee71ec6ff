r"""The ``plantguard`` command line.

Each command group lives in its own module with an ``add_commands(sub)``
function; plugins add theirs through ``plantguard_register_commands`` and run
with the CLI's plugin host (a :class:`~plantguard.host.CommandContext`).

Expected failures are :class:`~plantguard.errors.PlantGuardError`\ s, raised
where they happen and turned here, in one place, into one line on stderr and
the exit status of their class (:mod:`plantguard.errors`): 0 ok, 1 other
expected failure, 2 usage or input (a bad site file or argument), 3 store,
4 network or port, 141 stdout closed early (``| head``).  A traceback is shown
for a bug, or with ``--debug``, once.

Start-up costs only what the chosen command needs.  The built-in command
modules import their heavy dependencies (the store, numpy, asyncua …) inside
their handlers, so the parser of the built-in commands is cheap; the installed
plugins are loaded only for a plugin's command, for the full ``--help`` listing
and when a built-in handler first touches its plugin host (``run``, ``demo``,
``check``, ``probe`` …).  ``plantguard --version`` or ``plantguard trend`` never
import a plugin (``tests/test_cli_startup.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from .. import __version__
from ..errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILURE,
    NotAPlantGuardStore,
    PlantGuardError,
    StoreUnreachable,
    UsageError,
    one_line,
)
from ..host import Command, CommandContext, PluginHost, default_host
from . import acceptance, alarms, db, history, probe, records, report, serve, site, users
from .common import demo_site_text

__all__ = ["demo_site_text", "main"]

#: Command modules, in the order their commands appear in ``--help``.
COMMAND_MODULES = (serve, site, probe, alarms, history, records, report, users, acceptance, db)

#: Libraries whose log records lose their tracebacks unless ``--debug``: a failure
#: they log is reported by PlantGuard in its own words.
_QUIET_LIBRARIES = ("asyncua", "pymodbus", "alembic")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every expected failure ends here as one line and a status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing: a plugin that fails to load fails before the parser exists.
    debug = "--debug" in arguments[: _first_command(arguments)]
    args: argparse.Namespace | None = None
    try:
        parser, sub = _builtin_parser()
        if _needs_plugins(arguments, sub.choices):
            host = default_host()
            _add_plugin_commands(sub, host)
        else:
            host = cast(PluginHost, _DeferredHost())
        args = parser.parse_args(arguments)
        _configure_logging(args.log_level, debug=args.debug)
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 2
        target = getattr(args, "db", None)
        # `check` lists a bad --db with the site file's issues.
        problem = _url_problem(target) if isinstance(target, str) else None
        if problem is not None and args.command != "check":
            raise UsageError(f"--db: {problem}")
        status = int(args.func(args, host))
        sys.stdout.flush()  # a closed pipe shows here, not in Python's flush at exit
        return status
    except BrokenPipeError:
        return _broken_pipe()
    except PlantGuardError as exc:
        return _failed(exc, debug)
    except Exception as exc:
        store_failure = _store_failure(exc, getattr(args, "db", None))
        if store_failure is None:
            return _bug(exc)
        return _failed(store_failure, debug, cause=exc)


def _needs_plugins(arguments: Sequence[str], builtin: Mapping[str, object]) -> bool:
    """Whether the parser needs the plugins' commands: for a command that is not
    built in (a plugin's, or a typo argparse lists the choices for) and for the
    full ``--help``; not for a built-in command or ``--version``."""
    first = _first_command(arguments)
    if {"-h", "--help"} & set(arguments[:first]):
        return True  # `plantguard --help [...]`: the full listing
    if first < len(arguments):
        return arguments[first] not in builtin
    return "--version" not in arguments


class _DeferredHost:
    """A built-in command's plugin host, loaded and started when the handler first
    uses it: ``run`` or ``check`` load the plugins as before, ``trend`` never does."""

    def __init__(self) -> None:
        self._host: PluginHost | None = None

    def __getattr__(self, name: str) -> Any:
        if self._host is None:
            self._host = default_host()
        return getattr(self._host, name)


def _url_problem(target: str) -> str | None:
    """:func:`plantguard.build.url_problem` of ``--db``.  A value without a colon is
    a SQLite file path, which that check always passes (the file itself is checked
    when the store is opened): ``trend --db plant.db`` need not import the builder."""
    if ":" not in target:
        return None
    from ..build import url_problem

    return url_problem(target)


def _first_command(arguments: Sequence[str]) -> int:
    """Index of the first argument that is not a global option (or its value)."""
    i = 0
    while i < len(arguments) and arguments[i].startswith("-"):
        i += 2 if arguments[i] == "--log-level" else 1
    return i


def _configure_logging(level: str, *, debug: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    if not debug:
        handler.addFilter(_drop_library_tracebacks)
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
    for noisy in _QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))


def _drop_library_tracebacks(record: logging.LogRecord) -> bool:
    if record.name.split(".", 1)[0] in _QUIET_LIBRARIES:
        record.exc_info = None
        record.exc_text = None
    return True


def _failed(exc: PlantGuardError, debug: bool, *, cause: BaseException | None = None) -> int:
    """One expected failure: its message on stderr (the traceback too with --debug)."""
    if debug:
        traceback.print_exception(cause or exc)
    _say(f"plantguard: {_message(exc)}")
    return exc.exit_status


def _message(exc: PlantGuardError) -> str:
    # A StartError or ConfigError can only come from a module that was imported:
    # the check imports neither for a command that never loaded them.
    if "plantguard.build" in sys.modules:
        from ..build import StartError

        if isinstance(exc, StartError):
            if len(exc.issues) == 1:
                return f"cannot start: {exc.issues[0]}"
            return f"cannot start:\n{exc}"
    if "plantguard.config" in sys.modules:
        from ..config import ConfigError

        if isinstance(exc, ConfigError):
            return f"invalid configuration:\n{exc}"
    return one_line(exc) or type(exc).__name__


def _store_failure(exc: BaseException, target: object) -> PlantGuardError | None:
    """The store error a database exception means (None: not one PlantGuard expects)."""
    if "sqlalchemy" not in sys.modules and not isinstance(exc, sqlite3.DatabaseError):
        return None  # SQLAlchemy never imported: no store was touched
    import sqlalchemy as sa

    if not isinstance(exc, (sa.exc.SQLAlchemyError, sqlite3.DatabaseError)):
        return None
    where = f" {_shown(target)}" if isinstance(target, str) else ""
    reason = one_line(getattr(exc, "orig", None) or exc)
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return StoreUnreachable(
            f"cannot open the store{where}: {reason} "
            "(is the database server running, and is --db right?)"
        )
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.DatabaseError) and "not a database" in str(orig):
        return NotAPlantGuardStore(
            f"the store{where} is not a SQLite database ({reason}); give --db a PlantGuard store"
        )
    return None


def _shown(target: str) -> str:
    """``--db`` as shown in messages: a URL without its password."""
    import sqlalchemy as sa

    from ..store import database_url

    try:
        return sa.make_url(database_url(target)).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return repr(target)


def _bug(exc: BaseException) -> int:
    """Not an expected failure: the traceback, once, and where to report it."""
    traceback.print_exception(exc)
    _say(
        f"plantguard: unexpected {type(exc).__name__}: this is a bug in PlantGuard "
        "or a plugin; please report it with the traceback above"
    )
    return EXIT_FAILURE


def _broken_pipe() -> int:
    """Stdout was closed (``plantguard alarms list | head``): stop quietly.

    Python flushes stdout again at exit, which would raise once more; stdout is
    pointed at /dev/null first, as the Python documentation recommends.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout is no file descriptor (a test's capture): nothing is flushed to it
    return EXIT_BROKEN_PIPE


def _say(line: str) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):  # stderr gone too: nobody to tell
        print(line, file=sys.stderr, flush=True)


def build_parser(host: PluginHost) -> argparse.ArgumentParser:
    """The parser of every command: the built-in ones and those of ``host``'s plugins."""
    parser, sub = _builtin_parser()
    _add_plugin_commands(sub, host)
    return parser


def _builtin_parser() -> tuple[argparse.ArgumentParser, Any]:
    """The parser of the built-in commands, and its sub-parsers action."""
    parser = argparse.ArgumentParser(
        prog="plantguard",
        description="IoT safety-production monitoring and early-warning gateway.",
    )
    parser.add_argument("--version", action="version", version=f"plantguard {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of a failure (and of the libraries' logged errors)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    return parser, sub


def _add_plugin_commands(sub: Any, host: PluginHost) -> None:
    for command in host.commands.values():
        p = sub.add_parser(command.name, help=command.help)
        command.configure(p)
        p.set_defaults(func=_plugin_command(command))


def _plugin_command(command: Command) -> Callable[[argparse.Namespace, PluginHost], int]:
    def run(args: argparse.Namespace, host: PluginHost) -> int:
        return command.run(args, CommandContext(host))

    return run
