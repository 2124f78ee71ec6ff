"""PlantGuard's errors: the expected failures, each with the exit status the CLI gives it.

Modules raise these for failures a user can fix — a bad site file, a store that
cannot be reached, a port in use — and ``plantguard``'s ``main()`` maps them, in
one place, to one line on stderr naming what failed and what to do, with the
exit status of the error's class.  Anything else that escapes a command is a bug:
its traceback is shown (once).  ``plantguard --debug`` shows the traceback of an
expected failure too.

::

    PlantGuardError                 1  any other expected failure
    ├── ConfigurationError          2  usage or input: a bad site file, a bad argument
    │   ├── plantguard.config.ConfigError    a site file's issues (file:line: field: message)
    │   │   └── plantguard.build.StartError  a service could not start (status 1)
    │   ├── UsageError                       a bad command-line argument (--db, an option)
    │   └── plantguard.host.PluginError      a plugin could not load or refused the site
    ├── StoreError                  3  the store
    │   ├── StoreUnreachable                 the database server is down, or refuses us
    │   ├── StoreMissing                     no store where one was named
    │   └── NotAPlantGuardStore              a database that is not PlantGuard's
    ├── NetworkError                4  the network
    │   ├── PortInUse                        a port a service needs is taken
    │   └── DeviceUnreachable                a device a command needs does not answer
    └── PermissionDenied            1  refused: plantguard.cli.acting.ActorRefused (--as)

Exit statuses: 0 success; 1 an expected failure not in the classes below (and a
bug); 2 usage or input; 3 store; 4 network or port; 141 stdout was closed early
(``plantguard alarms list | head``: the command stops quietly).

A message is one line: :func:`one_line` folds a driver's multi-line text.
"""

from __future__ import annotations

import errno
import socket

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILURE",
    "EXIT_NETWORK",
    "EXIT_STORE",
    "EXIT_USAGE",
    "ConfigurationError",
    "DeviceUnreachable",
    "NetworkError",
    "NotAPlantGuardStore",
    "PermissionDenied",
    "PlantGuardError",
    "PortInUse",
    "StoreError",
    "StoreMissing",
    "StoreUnreachable",
    "UsageError",
    "ensure_port_free",
    "one_line",
    "port_in_use",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_NETWORK = 4
#: 128 + SIGPIPE, as a command killed by a closed pipe.
EXIT_BROKEN_PIPE = 141


def one_line(text: object) -> str:
    """``text`` on one line: lines joined with "; ", blank ones and tabs dropped."""
    lines = (line.strip() for line in str(text).splitlines())
    return "; ".join(line for line in lines if line)


class PlantGuardError(Exception):
    """An expected failure: its message says what failed and what to do."""

    #: The CLI's exit status for this class of failure.
    exit_status: int = EXIT_FAILURE


class ConfigurationError(PlantGuardError):
    """Usage or input: a site file, a setting or a command-line argument is wrong."""

    exit_status = EXIT_USAGE


class UsageError(ConfigurationError):
    """A command-line argument that cannot work (``--db postgresql:/broken``)."""


class StoreError(PlantGuardError):
    """The store cannot be used."""

    exit_status = EXIT_STORE


class StoreUnreachable(StoreError):
    """The database server does not answer, or refuses the connection."""


class StoreMissing(StoreError):
    """No store exists where one was named."""


class NotAPlantGuardStore(StoreError):
    """The database exists but is not a PlantGuard store."""


class NetworkError(PlantGuardError):
    """A network failure a command cannot work around."""

    exit_status = EXIT_NETWORK


class PortInUse(NetworkError):
    """A port a service must listen on is taken."""


class DeviceUnreachable(NetworkError):
    """A device the command needs does not answer."""


class PermissionDenied(PlantGuardError):
    """The acting user is unknown, gave a wrong password, or lacks the role."""


def ensure_port_free(host: str, port: int, *, what: str, setting: str) -> None:
    """Raise :class:`PortInUse` if ``host:port`` cannot be listened on because another
    socket holds it (a service calls this before binding: the libraries log a
    traceback of their own, then fail).  ``what`` listens ("the OPC UA server");
    ``setting`` is where its port is set.  Port 0 and other bind errors pass: the
    service's own bind reports those."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise port_in_use(host, port, what=what, setting=setting) from None


def port_in_use(host: str, port: int, *, what: str, setting: str) -> PortInUse:
    """The :class:`PortInUse` for ``what`` on ``host:port`` (see :func:`ensure_port_free`)."""
    return PortInUse(
        f"{what} cannot listen on {host}:{port}: the port is in use; stop what holds it, "
        f"or choose another port ({setting})"
    )
