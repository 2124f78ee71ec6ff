"""One MQTT client per broker, shared by every device on it, reconnecting with backoff.

Why shared: a plant's broker sees one PlantGuard client however many devices it
serves, so a site of 500 sensors is one TCP connection, one keep-alive and one
login, and a lost broker is noticed once for all of its devices.
:class:`BrokerPool` hands out one :class:`BrokerSession` per event loop and set
of broker settings; the session lives while any device driver is attached.

Why messages are dispatched in the client's callback: aiomqtt's message
iterator costs a task and an ``asyncio.wait`` per message, more than decoding a
value.  The session passes a queue class to ``Client.messages`` whose
``put_nowait`` routes the message at once (one dict lookup for an exact topic);
the iterator is still awaited, and ends when the connection does.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import aiomqtt
import pysparkplug as sp

from plantguard.plugin import cancel_and_wait

from .models import BrokerSettings, MqttTls, SparkplugSource
from .sparkplug import NAMESPACE, SparkplugNode, SparkplugTarget, node_filter, rebirth_payload
from .topics import is_wildcard, matches

__all__ = [
    "BrokerPool",
    "BrokerSession",
    "Handler",
    "Subscriber",
    "read_password",
    "tls_context",
]

log = logging.getLogger(__name__)

#: ``handler(topic, payload, retained, received_at)`` for the messages of one topic filter.
Handler = Callable[[str, bytes, bool, float], None]
_ids = itertools.count(1)


class Subscriber(Protocol):
    """A device driver attached to a session."""

    def broker_changed(self) -> None:
        """The session connected or lost the broker (see :attr:`BrokerSession.connected`)."""


def tls_context(settings: MqttTls) -> ssl.SSLContext:
    """Client context that verifies the broker's certificate and name.

    :raises OSError: a file cannot be read.  :raises ssl.SSLError: not a PEM file.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.certfile:
        context.load_cert_chain(settings.certfile, settings.keyfile)
    return context


def read_password(settings: BrokerSettings) -> str | None:
    """The password from ``password_env`` or ``password_file`` (None: none configured).

    :raises LookupError: the variable is not set.  :raises OSError: the file cannot be read.
    """
    if settings.password_env:
        value = os.environ.get(settings.password_env)
        if value is None:
            raise LookupError(f"environment variable {settings.password_env} is not set")
        return value
    if settings.password_file:
        text = Path(settings.password_file).read_text(encoding="utf-8")
        return text.splitlines()[0] if text else ""
    return None


class BrokerSession:
    """The client of one broker: connection, subscriptions, routing, publishing."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.connected = False
        self.ever_connected = asyncio.Event()
        self.last_error = "not connected yet"
        self._reset_backoff = False
        self._outage = False
        self._subscribers: list[Subscriber] = []
        self._exact: dict[str, list[Handler]] = {}
        self._wild: list[tuple[str, Handler]] = []
        self._owner: dict[int, list[tuple[str, Handler]]] = {}  # id(subscriber) -> routes
        self._filters: dict[str, int] = {}  # topic filter -> QoS
        self._nodes: dict[tuple[str, str], SparkplugNode] = {}
        self._rebirth_interval: dict[tuple[str, str], float] = {}
        self._last_rebirth: dict[tuple[str, str], float] = {}
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._client_id = settings.client_id or f"plantguard-{socket.gethostname()}-{os.getpid()}"
        if settings.client_id is None:
            self._client_id += f"-{next(_ids)}"
        self._client_id = self._client_id[:64]

    # --- devices ---------------------------------------------------------------------

    def attach(
        self,
        subscriber: Subscriber,
        routes: Sequence[tuple[str, Handler]],
        qos: int,
        sparkplug: tuple[SparkplugSource, SparkplugTarget] | None = None,
    ) -> None:
        """Route ``routes`` (topic filter, handler) and the Sparkplug source to ``subscriber``."""
        self._subscribers.append(subscriber)
        self._owner[id(subscriber)] = list(routes)
        new: list[str] = []
        for topic_filter, handler in routes:
            if is_wildcard(topic_filter):
                self._wild.append((topic_filter, handler))
            else:
                self._exact.setdefault(topic_filter, []).append(handler)
            new.append(topic_filter)
        if sparkplug is not None:
            source, target = sparkplug
            key = (source.group, source.node)
            node = self._nodes.get(key)
            if node is None:
                node = self._nodes[key] = SparkplugNode(source.group, source.node, self._rebirth)
            node.attach(target, source.device)
            interval = self._rebirth_interval.get(key, source.rebirth_interval)
            self._rebirth_interval[key] = min(interval, source.rebirth_interval)
            new.append(node_filter(source.group, source.node))
        for topic_filter in new:
            self._filters[topic_filter] = max(qos, self._filters.get(topic_filter, 0))
        if self._client is not None and self.connected:
            self._spawn(self._subscribe(self._client, {f: self._filters[f] for f in new}))
            if sparkplug is not None:
                self._rebirth(self._nodes[(sparkplug[0].group, sparkplug[0].node)])

    def detach(self, subscriber: Subscriber) -> None:
        """Stop routing to ``subscriber`` (its subscriptions end with the session)."""
        routes = self._owner.pop(id(subscriber), [])
        handlers = {id(h) for _, h in routes}
        for topic in list(self._exact):
            kept = [h for h in self._exact[topic] if id(h) not in handlers]
            if kept:
                self._exact[topic] = kept
            else:
                del self._exact[topic]
        self._wild = [(f, h) for f, h in self._wild if id(h) not in handlers]
        for key, node in list(self._nodes.items()):
            node.detach(subscriber)
            if node.empty:
                del self._nodes[key]
        self._subscribers = [s for s in self._subscribers if s is not subscriber]

    @property
    def idle(self) -> bool:
        return not self._subscribers

    # --- running ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            name = f"mqtt {self.settings.endpoint}"
            self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._side_tasks) if t is not None]
        self._task = None
        # Repeated cancels: aiomqtt's waits for broker replies can swallow one on 3.11.
        for task in tasks:
            await cancel_and_wait(task, what=f"the MQTT client of {self.settings.endpoint}")
        self._set_connected(False)

    async def _run(self) -> None:
        """Connect, serve until the connection ends, wait, again: doubling the wait
        from ``reconnect_min`` to ``reconnect_max``, back to the minimum after a success."""
        delay = self.settings.reconnect_min
        while True:
            try:
                await self._session()
            except Exception as exc:  # whatever it is, the devices need the client back
                if not isinstance(exc, (aiomqtt.MqttError, OSError, LookupError)):
                    log.debug(
                        "mqtt broker %s: unexpected failure", self.settings.endpoint, exc_info=exc
                    )
                self._failed(exc)
            finally:
                self._client = None
                self._set_connected(False)
            if self._reset_backoff:
                delay = self.settings.reconnect_min
                self._reset_backoff = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max)

    async def _session(self) -> None:
        s = self.settings
        client = aiomqtt.Client(
            s.host,
            s.tcp_port,
            username=s.username,
            password=read_password(s),
            client_id=self._client_id,
            tls_context=tls_context(s.tls) if s.tls is not None else None,
            keepalive=s.keepalive,
            timeout=s.timeout,
            clean_session=s.clean_session,
            logger=log,
        )
        session = self

        class _Dispatch(asyncio.Queue[aiomqtt.Message]):
            def put_nowait(self, item: aiomqtt.Message) -> None:
                session.dispatch(item)

        # Routing starts before the connection: a persistent session's queued messages
        # come right after the broker's CONNACK.
        async with client.messages(queue_class=_Dispatch) as messages, client:
            await self._subscribe(client, dict(self._filters))
            self._client = client
            self._reset_backoff = True
            self._outage = False
            log.info(
                "mqtt broker %s connected as %s (%d subscriptions)",
                s.endpoint,
                self._client_id,
                len(self._filters),
            )
            for node in self._nodes.values():
                node.reset()
                self._rebirth(node)
            self._set_connected(True)
            async for _ in messages:  # pragma: no cover - messages are dispatched, never queued
                pass

    async def _subscribe(self, client: aiomqtt.Client, filters: dict[str, int]) -> None:
        if filters:
            await client.subscribe(list(filters.items()))

    def _failed(self, exc: BaseException) -> None:
        """Log the first failure of an outage as a warning, the retries at debug level."""
        self.last_error = _explain(exc)
        level = logging.DEBUG if self._outage else logging.WARNING
        self._outage = True
        log.log(level, "mqtt broker %s: %s; reconnecting", self.settings.endpoint, self.last_error)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            self.ever_connected.set()
            self.last_error = ""
        elif not self.last_error:
            self.last_error = "connection to the broker closed"
        for subscriber in tuple(self._subscribers):
            subscriber.broker_changed()

    # --- messages --------------------------------------------------------------------

    def dispatch(self, message: aiomqtt.Message) -> None:
        """Route one received message; never raises (a handler's bug is logged)."""
        topic = message.topic.value
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = b"" if payload is None else str(payload).encode()
        now = time.time()
        try:
            handlers = self._exact.get(topic)
            if handlers is not None:
                for handler in handlers:
                    handler(topic, payload, message.retain, now)
            if self._nodes and topic.startswith(NAMESPACE):
                self._sparkplug(topic, payload, now)
            for topic_filter, handler in self._wild:
                if matches(topic_filter, topic):
                    handler(topic, payload, message.retain, now)
        except Exception:
            log.exception(
                "mqtt broker %s: message on %s not handled", self.settings.endpoint, topic
            )

    def _sparkplug(self, topic: str, payload: bytes, now: float) -> None:
        parts = topic.split("/")
        if len(parts) not in (4, 5):
            return
        node = self._nodes.get((parts[1], parts[3]))
        if node is not None:
            node.receive(parts[2], parts[4] if len(parts) == 5 else None, payload, now)

    # --- publishing ------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        """Publish (and, for QoS 1/2, wait for the broker's acknowledgement).

        :raises aiomqtt.MqttError: not connected, or no acknowledgement in time.
        """
        client = self._client
        if client is None or not self.connected:
            raise aiomqtt.MqttError(f"not connected to {self.settings.endpoint}: {self.last_error}")
        await client.publish(topic, payload, qos=qos, retain=retain)

    def sparkplug_datatype(self, source: SparkplugSource, metric: str) -> sp.DataType | None:
        """The datatype the last birth of ``source`` gave ``metric`` (None: unknown)."""
        node = self._nodes.get((source.group, source.node))
        if node is None:
            return None
        birth = node.node_birth if source.device is None else node.device_births.get(source.device)
        if birth is None:
            return None
        try:
            return birth.get_dtype(metric)
        except KeyError:
            return None

    def _rebirth(self, node: SparkplugNode) -> bool:
        """Ask ``node`` for its births, at most once per its ``rebirth_interval``."""
        key = (node.group, node.node)
        now = time.monotonic()
        last = self._last_rebirth.get(key)
        if self._client is None or (last is not None and now - last < self._rebirth_interval[key]):
            return False
        self._last_rebirth[key] = now
        topic = f"{NAMESPACE}/{node.group}/NCMD/{node.node}"
        log.info("sparkplug node %s/%s: rebirth requested", node.group, node.node)
        self._spawn(self._publish_quietly(topic, rebirth_payload()))
        return True

    async def _publish_quietly(self, topic: str, payload: bytes) -> None:
        try:
            await self.publish(topic, payload, qos=0)
        except aiomqtt.MqttError as exc:
            log.info("mqtt broker %s: cannot publish to %s: %s", self.settings.endpoint, topic, exc)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


#: CONNACK return codes (MQTT 3.1.1, 3.2.2.3): why a broker refused the login.
_REFUSED = {
    1: "the broker refused the connection: unacceptable protocol version",
    2: "the broker refused the client id",
    3: "the broker refused the connection: server unavailable",
    4: "the broker refused the login: bad username or password",
    5: "the broker refused the login: not authorized (username, password or certificate)",
}


def _explain(exc: BaseException) -> str:
    """What went wrong, in words: a refused login by its CONNACK code."""
    if isinstance(exc, aiomqtt.MqttCodeError) and isinstance(exc.rc, int) and exc.rc in _REFUSED:
        return _REFUSED[exc.rc]
    return str(exc) or type(exc).__name__


class BrokerPool:
    """One :class:`BrokerSession` per event loop and broker settings, while it has devices."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[int, BrokerSettings], BrokerSession] = {}

    def acquire(self, settings: BrokerSettings) -> BrokerSession:
        """The session of ``settings`` on the running loop, started if it is new."""
        key = (id(asyncio.get_running_loop()), settings)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = BrokerSession(settings)
            session.start()
        return session

    async def release(self, session: BrokerSession, subscriber: Subscriber) -> None:
        """Detach ``subscriber``; the last one out stops the session."""
        session.detach(subscriber)
        if session.idle:
            for key, known in list(self._sessions.items()):
                if known is session:
                    del self._sessions[key]
            await session.stop()

    def __len__(self) -> int:
        return len(self._sessions)


#: The pool of the gateway's drivers.
POOL = BrokerPool()
