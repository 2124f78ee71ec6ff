"""Registers the MQTT driver type as ``driver: mqtt``.

Why the checks here: what pydantic cannot see in one mapping — a metric point on
a device without ``sparkplug``, a writable point without a command topic, a
password variable that is not set, a CA file that does not load — is refused
when the driver is made, with the point and field, so ``plantguard check``
shows it at its line in the site file.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from pydantic import BaseModel

from plantguard.plugin import Device, DriverType, RegisterDriver, SettingError, hookimpl

from .broker import read_password, tls_context
from .driver import MqttDriver
from .models import MqttAddress, MqttConnection

__all__ = ["MqttDriverType", "plantguard_register_drivers"]


class MqttDriverType(DriverType):
    """IoT devices on an MQTT broker: plain numbers, JSON payloads or Sparkplug B."""

    connection_model = MqttConnection
    address_model = MqttAddress

    def create(
        self,
        device: Device,
        connection: BaseModel,
        addresses: Mapping[str, BaseModel],
    ) -> MqttDriver:
        if not isinstance(connection, MqttConnection):
            raise TypeError(f"expected MqttConnection, got {type(connection).__name__}")
        typed: dict[str, MqttAddress] = {}
        for point_id, address in addresses.items():
            if not isinstance(address, MqttAddress):
                raise TypeError(f"address of {point_id!r} is not an MqttAddress")
            typed[point_id] = address
        _check_broker(connection)
        for point in device.points:
            if point.id in typed:
                _check_point(point.id, point.access, typed[point.id], connection)
        return MqttDriver(device, connection, typed)


def _check_broker(connection: MqttConnection) -> None:
    broker = connection.broker
    field = "password_env" if broker.password_env else "password_file"
    try:
        read_password(broker)
    except (LookupError, OSError) as exc:
        raise SettingError(
            f"cannot read the broker password: {exc}", field=("connection", "broker", field)
        ) from exc
    tls = broker.tls
    if tls is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise SettingError(
            f"cannot load {tls.cafile}: {exc}", field=("connection", "broker", "tls", "cafile")
        ) from exc
    try:
        tls_context(tls)
    except (OSError, ssl.SSLError) as exc:
        raise SettingError(
            f"cannot load {tls.certfile} with {tls.keyfile}: {exc}",
            field=("connection", "broker", "tls", "certfile"),
        ) from exc


def _check_point(
    point_id: str, access: str, address: MqttAddress, connection: MqttConnection
) -> None:
    sparkplug = connection.sparkplug is not None
    if address.metric is not None and not sparkplug:
        raise SettingError(
            "a metric is read from a Sparkplug B device: set connection.sparkplug "
            "(group, node and device), or give topic instead",
            point=point_id,
            field=("address", "metric"),
        )
    if address.topic is not None and sparkplug:
        raise SettingError(
            "the points of a Sparkplug B device name metrics (address.metric), not topics",
            point=point_id,
            field=("address", "topic"),
        )
    if sparkplug:
        return
    if access == "read_write" and address.command_topic is None:
        raise SettingError(
            "a writable point needs command_topic (where writes are published)",
            point=point_id,
            field=("address", "command_topic"),
        )
    if access != "read_write" and address.command_topic is not None:
        raise SettingError(
            "command_topic is set but the point is read-only: set access: read_write",
            point=point_id,
            field=("address", "command_topic"),
        )


@hookimpl
def plantguard_register_drivers(register: RegisterDriver) -> None:
    register("mqtt", MqttDriverType())
