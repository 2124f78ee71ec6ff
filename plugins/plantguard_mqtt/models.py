"""Schemas of an MQTT device's ``connection`` and each point's ``address``.

Why separate models: the site file is validated against them when it is loaded,
so a topic filter with a misplaced ``#``, a JSON path that does not parse, a TLS
key without its certificate or a literal password is reported with file, line
and field before anything connects.

A device is a set of topics on one broker (:class:`BrokerSettings`); devices
whose broker settings are equal share one MQTT client.  A point names either a
``topic`` (a plain number, or a ``json`` path into a JSON payload) or a Sparkplug
B ``metric`` of the device's ``sparkplug`` node or device.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .paths import JsonPath, parse_path
from .topics import check_filter, check_topic

__all__ = [
    "BrokerSettings",
    "LastWill",
    "MqttAddress",
    "MqttConnection",
    "MqttTls",
    "SparkplugSource",
]

_SPARKPLUG_ID = r"^[^/+#]+$"


class MqttTls(BaseModel):
    """``broker.tls``: TLS with the broker's certificate verified against ``cafile``.

    ``certfile``/``keyfile`` are the gateway's own certificate, for brokers that
    require client certificates (``require_certificate true`` in Mosquitto).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cafile: str = Field(min_length=1, description="PEM file of the CA(s) trusted for the broker")
    certfile: str | None = Field(None, min_length=1, description="PEM certificate of the gateway")
    keyfile: str | None = Field(None, min_length=1, description="PEM private key of certfile")

    @model_validator(mode="after")
    def _key_with_certificate(self) -> MqttTls:
        if self.keyfile and not self.certfile:
            raise ValueError("keyfile is given without certfile")
        if self.certfile and not self.keyfile:
            raise ValueError("certfile is given without keyfile")
        return self


class BrokerSettings(BaseModel):
    """``connection.broker``: where the broker is and how the gateway logs in.

    The password is never written in the site file: ``password_env`` names an
    environment variable and ``password_file`` a file holding it (its first line).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1, description="broker address")
    port: int | None = Field(None, ge=1, le=65535, description="1883; 8883 with tls")
    tls: MqttTls | None = None
    username: str | None = Field(None, min_length=1)
    password_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="variable holding the password"
    )
    password_file: str | None = Field(None, min_length=1, description="file holding the password")
    client_id: str | None = Field(
        None, min_length=1, max_length=64, description="default: plantguard-<host>-<pid>"
    )
    clean_session: bool = Field(
        True,
        description="false: the broker keeps the subscriptions and queues QoS 1 messages "
        "while the gateway is away (needs client_id)",
    )
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between MQTT pings")
    timeout: float = Field(5.0, gt=0, le=120, description="seconds to wait for the broker")
    reconnect_min: float = Field(0.5, gt=0, le=60, description="first reconnect delay (s)")
    reconnect_max: float = Field(30.0, gt=0, le=3600, description="longest reconnect delay (s)")

    @model_validator(mode="before")
    @classmethod
    def _no_literal_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "the password is not written in the site file: name it with password_env "
                "(an environment variable) or password_file"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> BrokerSettings:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("a password needs username")
        if not self.clean_session and not self.client_id:
            raise ValueError("clean_session: false needs a client_id the broker knows again")
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("reconnect_min is above reconnect_max")
        return self

    @property
    def tcp_port(self) -> int:
        """The configured port, or MQTT's registered one (8883 with TLS)."""
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883

    @property
    def endpoint(self) -> str:
        """Where the broker is, for log lines and errors."""
        scheme = "mqtts" if self.tls is not None else "mqtt"
        return f"{scheme}://{self.host}:{self.tcp_port}"


class LastWill(BaseModel):
    """``connection.will``: the device's Last Will, which marks it offline at once.

    A message on ``topic`` with exactly ``payload`` means the device is gone;
    any other payload on it (``online``), or a live value, means it is back.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str = Field(min_length=1)
    payload: str = Field("offline", description="what the will says")

    @field_validator("topic")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        return check_topic(value)


class SparkplugSource(BaseModel):
    """``connection.sparkplug``: the Sparkplug B edge node (and device) this device is.

    Without ``device`` the points are the node's own metrics (NBIRTH/NDATA) and
    NDEATH marks it offline; with it, the device's (DBIRTH/DDATA), and DDEATH or
    its node's NDEATH does.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field(pattern=_SPARKPLUG_ID, max_length=128)
    node: str = Field(pattern=_SPARKPLUG_ID, max_length=128)
    device: str | None = Field(None, pattern=_SPARKPLUG_ID, max_length=128)
    rebirth_interval: float = Field(
        10.0, gt=0, le=3600, description="least seconds between rebirth requests to the node"
    )


class MqttConnection(BaseModel):
    """``connection:`` of a device with ``driver: mqtt``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: BrokerSettings
    will: LastWill | None = None
    sparkplug: SparkplugSource | None = None
    qos: Literal[0, 1, 2] = Field(1, description="QoS of the subscriptions and commands")
    stale_after: float | None = Field(
        None, gt=0, le=86_400 * 7, description="seconds without a message before Uncertain"
    )
    timestamp: str | None = Field(
        None, min_length=1, description="JSON path of the source time in every JSON payload"
    )

    @field_validator("timestamp")
    @classmethod
    def _timestamp_path(cls, value: str | None) -> str | None:
        if value is not None:
            parse_path(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> MqttConnection:
        if self.sparkplug is not None and self.will is not None:
            raise ValueError(
                "a Sparkplug device is marked offline by NDEATH/DDEATH: leave will out"
            )
        return self


class MqttAddress(BaseModel):
    """``address:`` of a point of an MQTT device.

    ``topic`` (with ``+``/``#`` wildcards) and, for a JSON payload, ``json`` — a
    path such as ``$.sensors[0].co`` —; or ``metric``, the name of a Sparkplug B
    metric of the device.  ``command_topic`` (and ``command``, the payload with
    ``{value}``) is where writes go for ``access: read_write``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str | None = Field(None, min_length=1, description="topic filter the value comes on")
    json_path: str | None = Field(
        None, alias="json", min_length=1, description="JSON path of the value in the payload"
    )
    timestamp: str | None = Field(
        None, min_length=1, description="JSON path of the source time (overrides the device's)"
    )
    metric: str | None = Field(None, min_length=1, description="Sparkplug B metric name")
    stale_after: float | None = Field(
        None, gt=0, le=86_400 * 7, description="overrides the device's stale_after"
    )
    command_topic: str | None = Field(None, min_length=1, description="where writes publish")
    command: str = Field("{value}", min_length=1, description="write payload; {value} is replaced")
    retain: bool = Field(False, description="publish writes retained")

    @field_validator("topic")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        return check_filter(value) if value is not None else None

    @field_validator("command_topic")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        return check_topic(value) if value is not None else None

    @field_validator("json_path", "timestamp")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            parse_path(value)
        return value

    @field_validator("command")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{value}" not in value:
            raise ValueError("command must contain {value}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> MqttAddress:
        if (self.topic is None) == (self.metric is None):
            raise ValueError("give topic (plain or JSON payloads) or metric (Sparkplug B)")
        if self.metric is not None and (self.json_path or self.timestamp or self.command_topic):
            raise ValueError("a Sparkplug metric takes no json, timestamp or command_topic")
        return self

    @property
    def path(self) -> JsonPath | None:
        """The parsed ``json`` path (None: the payload is the number itself)."""
        return parse_path(self.json_path) if self.json_path is not None else None
