"""A connection to the broker that comes back: connect, run a session, retry.

Both publishers (the Sparkplug edge node and Home Assistant discovery) need the
same loop, and each needs its own connection because each has its own Last Will
(the NDEATH; the ``offline`` availability message).  The Will is fixed when the
client connects, and the edge node's changes with every connection (bdSeq), so a
new client is made per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiomqtt

from .options import BrokerOptions, TlsOptions

__all__ = ["Session", "first_failure", "make_client", "run_connected", "tls_context"]

log = logging.getLogger("plantguard.mqtt_publish")

#: Runs while connected; returns (or raises :class:`aiomqtt.MqttError`) when the connection ends.
Session = Callable[[aiomqtt.Client], Awaitable[None]]


def tls_context(tls: TlsOptions) -> ssl.SSLContext:
    """A client context that verifies the broker (certificate and host name)."""
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


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
        timeout=max(5.0, float(broker.keepalive)),
        tls_context=None if broker.tls is None else tls_context(broker.tls),
    )


async def run_connected(
    broker: BrokerOptions,
    connect: Callable[[], aiomqtt.Client],
    session: Session,
    *,
    on_lost: Callable[[], None],
    what: str,
) -> None:
    """Connect and run ``session`` until cancelled, reconnecting every
    ``broker.reconnect_interval`` seconds; ``on_lost`` is called each time the broker
    is (or stays) unreachable.  Cancellation disconnects cleanly (no Will is sent)."""
    failures = 0
    while True:
        client = connect()
        try:
            async with client:
                if failures:
                    log.info("%s: connected to %s:%d again", what, broker.host, broker.port)
                failures = 0
                await session(client)
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
        await asyncio.sleep(broker.reconnect_interval)


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
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
