"""``services.mqtt_publish`` in the site file: the broker, the Sparkplug edge node, HA discovery.

One options model for both publishers because they share the broker and the
mapping of broker users to PlantGuard roles: a command that arrives over MQTT
(a Sparkplug DCMD, a Home Assistant button) acts as the broker user it names,
with the role this mapping gives, through the alarm manager's one entry point.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BrokerOptions",
    "HomeAssistantOptions",
    "MqttPublishOptions",
    "SparkplugOptions",
    "StoreForwardOptions",
    "TlsOptions",
]

#: A Sparkplug id (group, edge node, device) may not hold MQTT's separators or wildcards.
SPARKPLUG_ID = r"^[^/#+]+$"
#: A topic level PlantGuard builds topics from (discovery prefix, node id).
TOPIC_LEVEL = r"^[A-Za-z0-9_\-]+$"


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TlsOptions(_Options):
    """TLS to the broker: the broker's certificate is verified (against ``ca_file``, or
    the system's trust store) including its host name; a client certificate is
    optional (brokers that require one authenticate the gateway by it)."""

    ca_file: str | None = Field(None, description="PEM CA bundle; none: the system's")
    cert_file: str | None = Field(None, description="PEM client certificate")
    key_file: str | None = Field(None, description="PEM key of the client certificate")


class BrokerOptions(_Options):
    """Where the broker is and who the gateway is on it."""

    host: str = Field("127.0.0.1", description="broker address")
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    keepalive: int = Field(
        30, ge=2, le=3600, description="seconds; the broker publishes the NDEATH within 1.5×"
    )
    reconnect_interval: float = Field(2.0, gt=0, le=300, description="seconds between attempts")
    tls: TlsOptions | None = None


class StoreForwardOptions(_Options):
    """What is sent, flagged historical, after the broker was away."""

    max_samples: int = Field(
        10_000, ge=0, le=1_000_000, description="newest samples forwarded; 0 turns it off"
    )


class SparkplugOptions(_Options):
    """The gateway as a Sparkplug B edge node; each PlantGuard device is a Sparkplug device."""

    group_id: str = Field("plantguard", pattern=SPARKPLUG_ID, max_length=64)
    #: Empty: the site id.
    edge_node_id: str = Field("", pattern=r"^[^/#+]*$", max_length=64)
    deadband: float = Field(0.0, ge=0, description="absolute deadband of every point")
    deadbands: dict[str, float] = Field(
        default_factory=dict, description="deadband per point id, overriding `deadband`"
    )
    store_forward: StoreForwardOptions = StoreForwardOptions()
    #: Sparkplug 3.0 primary host application: when set, the node publishes its births
    #: only while that host's ``spBv1.0/STATE/<id>`` says it is online, and goes offline
    #: (NDEATH, disconnect; data kept for store and forward) while it is not.
    primary_host_id: str | None = Field(None, pattern=SPARKPLUG_ID, max_length=64)


class HomeAssistantOptions(_Options):
    """Home Assistant MQTT discovery: devices, sensors, alarm binary sensors and buttons."""

    prefix: str = Field("homeassistant", pattern=TOPIC_LEVEL, max_length=64)
    #: The broker user Home Assistant connects as: its button presses act with this
    #: user's role from ``roles``.
    command_user: str = "homeassistant"


class MqttPublishOptions(_Options):
    broker: BrokerOptions = BrokerOptions()
    sparkplug: SparkplugOptions | None = SparkplugOptions()
    homeassistant: HomeAssistantOptions | None = None
    #: Broker user → PlantGuard role of the commands that user sends; unmapped users
    #: are refused (they act as anonymous viewers).
    roles: dict[str, Literal["viewer", "operator", "engineer", "admin"]] = Field(
        default_factory=dict
    )
