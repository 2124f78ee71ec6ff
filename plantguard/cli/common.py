"""Pieces several commands share: the demo site, the store, time formatting.

Every command module imports this one while the parser is built, for every
command line: it imports only the standard library at the top, and the store,
pydantic and the site loader inside the functions that use them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import difflib
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hookspecs import DemoOptions
from ..host import PluginHost, default_host

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ..store import Store

__all__ = [
    "DEMO_DB",
    "SITE_ENV",
    "add_db_argument",
    "demo_site_text",
    "did_you_mean",
    "duration_argument",
    "fmt_time",
    "fmt_times",
    "open_store",
    "site_path",
    "site_store_url",
    "store_target",
]

DEMO_DB = "./plantguard-demo.db"
#: The site file whose ``store.url`` commands use when neither ``--db`` nor ``--site`` is given.
SITE_ENV = "PLANTGUARD_SITE"

#: ``argparse`` sub-parsers action (its class is private in the standard library).
SubParsers = Any


def add_db_argument(
    parser: argparse.ArgumentParser,
    default: str | None = DEMO_DB,
    *,
    site: bool = False,
    suppress: bool = False,
) -> None:
    """``--db`` (and with ``site``, ``--site``).

    Without ``site`` (``run``, ``demo``) ``--db`` defaults to ``default``.  With it
    the store is :func:`store_target`'s: ``--db``, else the ``store.url`` of
    ``--site`` or ``$PLANTGUARD_SITE``, else the demo's store.  ``suppress``: for a
    sub-command whose parent parser takes the same options.
    """
    if not site:
        parser.add_argument(
            "--db", default=default, help=f"SQLite file or SQLAlchemy URL (default: {default})"
        )
        return
    unset: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--db",
        default=unset,
        metavar="FILE|URL",
        help="the store: SQLite file or SQLAlchemy URL (default: the store.url of --site or "
        f"${SITE_ENV}; with neither, the demo's {DEMO_DB}); it must exist "
        "(`plantguard db init` creates one)",
    )
    parser.add_argument(
        "--site",
        type=Path,
        default=unset,
        metavar="SITE.yaml",
        help=f"site file whose store.url is the store (default: ${SITE_ENV}); --db wins",
    )


def site_path(args: argparse.Namespace) -> Path | None:
    """The site file given by ``--site`` or ``$PLANTGUARD_SITE`` (None: neither)."""
    given: Path | None = getattr(args, "site", None)
    if given is not None:
        return given
    env = os.environ.get(SITE_ENV, "").strip()
    return Path(env) if env else None


def site_store_url(path: Path) -> str:
    """The ``store.url`` of the site file at ``path`` (its default when not set).

    Only the ``store`` section is validated: what the store is does not depend on
    the plugins the rest of the file needs.
    """
    from pydantic import ValidationError

    from ..config import ConfigError, ConfigIssue, parse_yaml, validation_issues
    from ..model import StoreSettings
    from ..yamlsafe import MAX_BYTES, UnsafeYaml, decode

    try:
        with path.open("rb") as f:
            text = decode(f.read(MAX_BYTES + 1))
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(str(path), None, "", f"cannot read: {exc.strerror}")]
        ) from None
    except UnsafeYaml as exc:
        raise ConfigError([ConfigIssue(str(path), exc.line, "", exc.message)]) from None
    data, location = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError([location.issue((), "the site file must be a mapping")])
    try:
        settings = StoreSettings.model_validate(data.get("store") or {})
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, location, ("store",))) from None
    return settings.url


def store_target(args: argparse.Namespace) -> str:
    """The store a command uses: ``--db``; else the ``store.url`` of ``--site`` or
    ``$PLANTGUARD_SITE``; else the demo's (:data:`DEMO_DB`)."""
    db: str | None = getattr(args, "db", None)
    if db:
        return db
    site = site_path(args)
    if site is not None:
        return site_store_url(site)
    return DEMO_DB


@contextlib.contextmanager
def open_store(args: argparse.Namespace | str) -> Iterator[Store]:
    """The existing, current store of ``args`` (:func:`store_target`) or at a ``--db`` value.

    Nothing is created or migrated.  No store there, or one behind this version,
    raises a :class:`~plantguard.errors.StoreError` (one line, exit status 3).
    """
    from ..store import Store

    target = args if isinstance(args, str) else store_target(args)
    # StoreMissing / StoreBehind / … are plantguard.errors.StoreErrors: main() prints
    # their one line and exits with status 3.
    store = Store(target, existing_only=True)
    try:
        yield store
    finally:
        store.close()


def did_you_mean(kind: str, name: str, known: Iterable[str], *, where: str = "the store") -> str:
    """``unknown device 'pmp1' (did you mean pump1?)`` — for ids not in a store."""
    choices = sorted(set(known))
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    if not choices:
        hint += f" — {where} has no {kind}s"
    return f"unknown {kind} {name!r}{hint}"


def fmt_time(t: float) -> str:
    """Local time to the millisecond: ``2026-03-01 08:00:00.250``.

    The same text as ``datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]``
    (microseconds rounded as ``datetime`` rounds them, then cut to milliseconds), in
    half the time.  A whole column (``trend``'s listing) goes through :func:`fmt_times`.
    """
    frac, whole = math.modf(t)
    micro = round(frac * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    elif micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(whole))}.{micro // 1000:03d}"


def fmt_times(times: Sequence[float] | npt.NDArray[np.float64]) -> list[str]:
    """:func:`fmt_time` of every time in ``times``, as one numpy pass over the column.

    ``trend`` prints a line per sample (86,400 for a day of seconds): formatting each
    with ``time.localtime`` + ``strftime`` is most of the command's time.  Here the
    local-time offset is looked up once per hour of UTC (at its first and last
    second) and the text made by ``numpy.datetime_as_string``; an hour whose offset
    changes inside it (a DST change, also at a half hour), whose local time is not
    UTC plus the offset (a zone counting leap seconds), or a year outside 1000–9999
    is formatted sample by sample with :func:`fmt_time`.  The text is the same.
    """
    import numpy as np  # here: the parser of every command is built without it

    t = np.asarray(times, dtype=np.float64).ravel()
    if t.size == 0 or not np.isfinite(t).all():  # no times, or fmt_time's error
        return [fmt_time(x) for x in t.tolist()]
    frac, whole = np.modf(t)  # as fmt_time: math.modf, then round like datetime
    micro = np.round(frac * 1e6)
    up, down = micro >= 1_000_000, micro < 0
    whole = whole + up - down
    micro = micro - 1_000_000 * up + 1_000_000 * down
    seconds = whole.astype(np.int64)
    hours, where = np.unique(seconds // 3600, return_inverse=True)
    offsets = np.array([_hour_offset(int(h)) for h in hours], dtype=np.int64)[where]
    mixed = offsets == _MIXED
    local = seconds + np.where(mixed, 0, offsets)
    stamp = (local * 1000 + (micro // 1000).astype(np.int64)).astype("datetime64[ms]")
    out: list[str]
    if local.min() >= _YEAR_1000 and local.max() < _YEAR_10000:
        # YYYY-MM-DDTHH:MM:SS.mmm (23 characters), with the T made a space in place
        text = np.datetime_as_string(stamp, unit="ms").astype("U23")
        chars = text.view(np.uint32).reshape(-1, 23)
        chars[:, 10] = ord(" ")
        out = text.tolist()
    else:
        out = [""] * t.size
        mixed[:] = True
    for i in np.flatnonzero(mixed).tolist():
        out[i] = fmt_time(float(t[i]))
    return out


#: 1000-01-01 and 10000-01-01 in seconds since 1970: the years with four digits.
_YEAR_1000, _YEAR_10000 = -30_610_224_000, 253_402_300_800
_EPOCH = dt.datetime(1970, 1, 1)
#: :func:`_hour_offset` of an hour that :func:`fmt_times` formats sample by sample.
_MIXED = -(2**40)


def _hour_offset(hour: int) -> int:
    """Seconds east of UTC through UTC hour ``hour`` (:data:`_MIXED`: not one offset)."""
    first, last = time.localtime(hour * 3600), time.localtime(hour * 3600 + 3599)
    offset = first.tm_gmtoff
    # datetime's calendar has no leap seconds (time.gmtime in a "right/" zone has)
    try:
        utc = _EPOCH + dt.timedelta(seconds=hour * 3600 + offset)
    except OverflowError:  # after 9999: sample by sample
        return _MIXED
    if last.tm_gmtoff != offset or utc.timetuple()[:6] != first[:6]:
        return _MIXED
    return offset


def demo_site_text(
    *, opcua_port: int, modbus_port: int, db: str, scenario: str, host: PluginHost | None = None
) -> str:
    """The demo site with the ports, database and scenario chosen on the command line.

    The site comes from the plugin implementing ``plantguard_demo_site`` (the
    simulator plugin) of ``host`` (default: the installed plugins).
    """
    options = DemoOptions(opcua_port=opcua_port, modbus_port=modbus_port, db=db, scenario=scenario)
    return (host or default_host()).demo_site(options).text


_LONGEST = 100 * 365.25 * 86_400.0


def duration_argument(text: str) -> float:
    """An argparse type for ``--since 30d``: :func:`plantguard.kpi.parse_duration`,
    with its error turned into argparse's usage error."""
    from ..kpi import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < value <= _LONGEST:
        raise argparse.ArgumentTypeError(
            f"duration must be positive and at most 100 years, got {text!r}"
        )
    return value
