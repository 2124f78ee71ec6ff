"""Hook implementations of plantguard_mqtt_publish (registered through the ``plantguard`` entry-point group).

* the ``mqtt_publish`` service (``services.mqtt_publish`` in the site file): the
  Sparkplug B edge node and, when configured, Home Assistant MQTT discovery;
* the ``mqtt_publish`` alarm sink: the engine's one way for a plugin to hear every
  alarm transition, handed to the running services of the engine it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from plantguard.plugin import (
    AlarmSink,
    EngineView,
    RegisterService,
    RegisterSink,
    Service,
    ServiceType,
    SettingError,
    Transition,
    hookimpl,
)

from .edge_node import EdgeNode
from .homeassistant import HomeAssistantPublisher
from .options import MqttPublishOptions, TlsOptions

__all__ = [
    "MqttPublishService",
    "MqttPublishServiceType",
    "TransitionSink",
    "plantguard_register_services",
    "plantguard_register_sinks",
]

#: Services started and not yet stopped (several engines may run in one process).
_RUNNING: set[MqttPublishService] = set()


class MqttPublishService(Service):
    """The publishers configured for one engine."""

    def __init__(self, options: MqttPublishOptions) -> None:
        self.options = options
        self.edge_node = EdgeNode(options, options.sparkplug) if options.sparkplug else None
        self.homeassistant: HomeAssistantPublisher | None = None
        self._alarm_ids: frozenset[str] = frozenset()

    async def start(self, engine: EngineView) -> None:
        self._alarm_ids = frozenset(engine.alarms.definitions)
        node = engine.site.id
        if self.edge_node is not None:
            await self.edge_node.start(engine)
            node = self.edge_node.node_id
        if self.options.homeassistant is not None:
            self.homeassistant = HomeAssistantPublisher(
                self.options, self.options.homeassistant, node
            )
            await self.homeassistant.start(engine)
        _RUNNING.add(self)

    async def stop(self) -> None:
        _RUNNING.discard(self)
        if self.homeassistant is not None:
            await self.homeassistant.stop()
        if self.edge_node is not None:
            await self.edge_node.stop()

    def on_transition(self, transition: Transition) -> None:
        if transition.alarm_id not in self._alarm_ids:
            return  # another engine's alarm
        if self.edge_node is not None:
            self.edge_node.on_transition(transition)
        if self.homeassistant is not None:
            self.homeassistant.on_transition(transition)


class MqttPublishServiceType(ServiceType):
    """``services: {mqtt_publish: {...}}`` in the site file."""

    options_model: ClassVar[type[BaseModel]] = MqttPublishOptions

    def create(self, options: BaseModel) -> Service:
        if not isinstance(options, MqttPublishOptions):
            options = MqttPublishOptions.model_validate(options.model_dump())
        if options.broker.tls is not None:
            _check_tls(options.broker.tls)
        return MqttPublishService(options)


def _check_tls(tls: TlsOptions) -> None:
    """Refuse, at build time, TLS files that are not there (looked at, not opened)."""
    if (tls.cert_file is None) != (tls.key_file is None):
        raise SettingError(
            "a client certificate needs both cert_file and key_file",
            field=("broker", "tls", "cert_file" if tls.cert_file is None else "key_file"),
        )
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, name)
        if path is not None and not Path(path).expanduser().is_file():
            raise SettingError(f"{path} is not a file", field=("broker", "tls", name))


class TransitionSink(AlarmSink):
    """Hands each alarm transition to the running services (they keep their own alarms)."""

    async def deliver(self, transition: Transition) -> None:
        for service in tuple(_RUNNING):
            service.on_transition(transition)


@hookimpl
def plantguard_register_services(register: RegisterService) -> None:
    register("mqtt_publish", MqttPublishServiceType())


@hookimpl
def plantguard_register_sinks(register: RegisterSink) -> None:
    register("mqtt_publish", TransitionSink())
