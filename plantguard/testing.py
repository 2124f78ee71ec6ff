"""The plugin test kit: pytest fixtures for testing a plugin against a real engine.

Installed as a pytest plugin (entry point ``pytest11``), so a plugin package's
tests can use the fixtures without importing anything::

    async def test_my_driver_feeds_the_table(plantguard_host, running_site):
        plantguard_host.register(my_plugin, "mine")
        async with running_site(SITE_YAML) as engine:
            await wait_for(lambda: engine.table.quality[0] == 0)

``running_site`` runs the whole engine — drivers, rules, alarm manager, services,
history in a SQLite file under ``tmp_path`` — on the test's event loop and
stops it cleanly on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import pytest

from .config import LoadedSite, parse_site
from .engine import Engine
from .host import PluginHost
from .store import Store

__all__ = ["RunningSite", "free_tcp_port", "wait_for"]


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Wait until ``predicate()`` is truthy; fail the test with the timeout otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


class RunningSite(Protocol):
    def __call__(
        self, site_yaml: str, *, db: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[Engine]: ...


@pytest.fixture
def plantguard_host() -> PluginHost:
    """A plugin host with the installed plugins loaded but not yet started,
    so a test can register its own plugin first."""
    host = PluginHost()
    host.load_entry_points()
    return host


@pytest.fixture
def load_site_text(plantguard_host: PluginHost) -> Callable[[str], LoadedSite]:
    """Validate a site given as YAML text (starts the host on first use)."""

    def load(text: str) -> LoadedSite:
        plantguard_host.start()
        return parse_site(text, "<test site>", plantguard_host)

    return load


#: How long :func:`running_site` waits for the engine to stop.
STOP_TIMEOUT = 90.0


@pytest.fixture
def running_site(plantguard_host: PluginHost, tmp_path: Path) -> RunningSite:
    """Run an engine for a site (YAML text) until the ``async with`` block exits."""

    @contextlib.asynccontextmanager
    async def run(site_yaml: str, *, db: str | None = None) -> AsyncIterator[Engine]:
        plantguard_host.start()
        loaded = parse_site(site_yaml, "<test site>", plantguard_host)
        store = Store(db or str(tmp_path / "plantguard-test.db"))
        engine = Engine(loaded, plantguard_host, store)
        stop = asyncio.Event()
        task = asyncio.create_task(engine.run(stop))
        ready = asyncio.create_task(engine.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            store.close()
            task.result()  # raises the start-up error
        try:
            yield engine
        finally:
            stop.set()
            # Bounded: a service whose stop hangs fails the test that shows it, with a
            # message, instead of running into the suite's timeout with no clue.
            done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT)
            store.close()
            if not done:
                task.cancel()
                pytest.fail(f"the engine did not stop within {STOP_TIMEOUT:g} s")
            task.result()

    return run


@pytest.fixture
def tcp_port() -> int:
    return free_tcp_port()
