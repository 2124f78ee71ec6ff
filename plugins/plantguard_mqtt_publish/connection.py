"""A connection to the broker that comes back: connect, run a session, retry.

Both publishers (the Sparkplug edge node and Home Assistant discovery) need the
same loop, and each needs its own connection because each has its own Last Will
(the NDEATH; the ``offline`` availability message).  The Will is fixed when the
client connects, and the edge node's changes with every connection (bdSeq), so a
new client is made per attempt.

Stopping is a request (an event), not a cancellation of the connection loop: the
session is cancelled and the client then leaves its ``async with`` normally, so the
broker gets a DISCONNECT and sends no Will.  Cancelling is repeated until the task
ends: aiomqtt 1.x waits for every acknowledged call with ``asyncio.wait_for``, which
on Python 3.11 drops a cancellation that arrives together with the broker's answer
(CPython gh-86296) — the session then went on waiting for messages for good and a
gateway's stop never ended.  Every wait of a stop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiomqtt

from plantguard.plugin import cancel_and_wait

from .options import BrokerOptions, TlsOptions

__all__ = [
    "Session",
    "client_timeout",
    "first_failure",
    "make_client",
    "run_connected",
    "stop_connection",
    "tls_context",
]

log = logging.getLogger("plantguard.mqtt_publish")

#: Runs while connected; returns (or raises :class:`aiomqtt.MqttError`) when the connection ends.
Session = Callable[[aiomqtt.Client], Awaitable[None]]


def tls_context(tls: TlsOptions) -> ssl.SSLContext:
    """A client context that verifies the broker (certificate and host name)."""
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def client_timeout(broker: BrokerOptions) -> float:
    """Seconds the client waits for any answer of the broker (CONNACK, PUBACK, …)."""
    return max(5.0, float(broker.keepalive))


def make_client(broker: BrokerOptions, client_id: str, will: aiomqtt.Will) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        client_id=client_id,
        keepalive=broker.keepalive,
        will=will,
        clean_session=True,
        timeout=client_timeout(broker),
        tls_context=None if broker.tls is None else tls_context(broker.tls),
    )


async def run_connected(
    broker: BrokerOptions,
    connect: Callable[[], aiomqtt.Client],
    session: Session,
    *,
    on_lost: Callable[[], None],
    what: str,
    stop: asyncio.Event,
) -> None:
    """Connect and run ``session`` until ``stop`` is set, reconnecting every
    ``broker.reconnect_interval`` seconds; ``on_lost`` is called each time the broker
    is (or stays) unreachable.  A stop disconnects cleanly (no Will is sent)."""
    failures = 0
    while not stop.is_set():
        client = connect()
        try:
            async with client:
                if failures:
                    log.info("%s: connected to %s:%d again", what, broker.host, broker.port)
                failures = 0
                await _until_stopped(session(client), stop, what)
        except aiomqtt.MqttError as exc:
            if not failures:
                log.warning(
                    "%s: no connection to %s:%d (%s); retrying every %g s",
                    what,
                    broker.host,
                    broker.port,
                    exc,
                    broker.reconnect_interval,
                )
            failures += 1
            on_lost()
        except Exception:  # a defect must not end publishing for good
            log.exception("%s failed; reconnecting", what)
            failures += 1
            on_lost()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(broker.reconnect_interval):
                await stop.wait()


async def _until_stopped(session: Awaitable[None], stop: asyncio.Event, what: str) -> None:
    """Run ``session`` until it ends (its exception is raised) or ``stop`` is set."""
    task = asyncio.ensure_future(session)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            await cancel_and_wait(task, what=f"the session of {what}")
    if task.done() and not task.cancelled():
        task.result()


async def stop_connection(
    task: asyncio.Task[None], stop: asyncio.Event, broker: BrokerOptions, *, what: str
) -> None:
    """Stop a :func:`run_connected` task, bounded: the request lets a connection
    attempt and the clean disconnect finish (each bounded by the client's timeout);
    if that takes longer the task is cancelled."""
    stop.set()
    timeout = 2 * client_timeout(broker) + 1.0
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.error("%s did not stop within %g s; cancelling it", what, timeout)
        await cancel_and_wait(task, what=what)
    elif not task.cancelled() and task.exception() is not None:
        log.error("%s ended with an error", what, exc_info=task.exception())


async def first_failure(coroutines: list[Coroutine[Any, Any, None]]) -> None:
    """Run the coroutines together until one fails (its exception is raised) or all end."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            await cancel_and_wait(task, what="a part of an MQTT session")
