"""The gateway's MQTT discovery payloads, checked by Home Assistant's own MQTT code.

A real gateway (the demo site plus the ``mqtt_publish`` service with Home Assistant
discovery) publishes to the real Mosquitto on 127.0.0.1:1883 under a discovery
prefix of this test's own.  Every config it leaves retained is then put through
what Home Assistant's MQTT integration does with a discovery message: the topic
against its discovery topic pattern, the origin against its origin schema, the
config against the platform's ``DISCOVERY_SCHEMA`` (sensor, binary_sensor,
button) — nothing dropped as unknown — and the value templates rendered by HA's
template engine against the state the gateway published.  No custom integration
is involved: this is the path of a factory that runs only HA's MQTT integration.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
import uuid

from homeassistant.components.mqtt import binary_sensor, button, discovery, sensor
from homeassistant.components.mqtt.schemas import MQTT_ORIGIN_INFO_SCHEMA
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.template import Template
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
import pytest
from pytest_homeassistant_custom_component.common import async_fire_mqtt_message
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from .gateway import TANK1, Gateway

BROKER = ("127.0.0.1", 1883)
#: The real client class, taken before the MQTT mock of a test patches the module.
RealClient = mqtt.Client
#: The platform schemas HA validates a discovered config with (voluptuous validators).
SCHEMAS: dict[str, Any] = {
    "sensor": sensor.DISCOVERY_SCHEMA,
    "binary_sensor": binary_sensor.DISCOVERY_SCHEMA,
    "button": button.DISCOVERY_SCHEMA,
}


def retained(filters: list[str], seconds: float = 1.0) -> dict[str, bytes]:
    """The retained messages under ``filters`` (a synchronous client, no thread left behind)."""
    found: dict[str, bytes] = {}
    client = RealClient(CallbackAPIVersion.VERSION2, client_id=f"ha-test-{uuid.uuid4().hex}")

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        found[message.topic] = message.payload

    client.on_message = on_message
    client.connect(*BROKER)
    for topic in filters:
        client.subscribe(topic, qos=1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.loop(timeout=0.1)
    client.disconnect()
    return found


def publish(topic: str, payload: bytes) -> None:
    """Publish one message to the real broker (what HA's client would have sent)."""
    client = RealClient(CallbackAPIVersion.VERSION2, client_id=f"ha-pub-{uuid.uuid4().hex}")
    client.connect(*BROKER)
    info = client.publish(topic, payload, qos=1)
    while not info.is_published():
        client.loop(timeout=0.1)
    client.disconnect()


def clear(filters: list[str]) -> None:
    """Remove what the test left retained on the shared broker."""
    topics = [t for t, p in retained(filters).items() if p]
    client = RealClient(CallbackAPIVersion.VERSION2, client_id=f"ha-clear-{uuid.uuid4().hex}")
    client.connect(*BROKER)
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        client.loop(timeout=0.1)
    client.disconnect()


@pytest.fixture
def mqtt_gateway(gateway: Gateway) -> Any:
    """The test's gateway, restarted with HA discovery under a prefix of its own."""
    tag = uuid.uuid4().hex[:8]
    prefix, node = f"hadisc{tag}", f"gw{tag}"

    def add_mqtt(site: dict[str, Any]) -> None:
        site["services"]["mqtt_publish"] = {
            "broker": {"host": BROKER[0], "port": BROKER[1], "reconnect_interval": 0.3},
            "sparkplug": {"group_id": f"hadisc-{tag}", "edge_node_id": node},
            "homeassistant": {"prefix": prefix},
            "roles": {"homeassistant": "operator"},
        }

    gateway.stop()
    gateway.use_site(add_mqtt)
    gateway.start()
    filters = [f"{prefix}/#", f"plantguard/{node}/#", f"spBv1.0/hadisc-{tag}/#"]
    try:
        yield prefix, node, filters
    finally:
        gateway.stop()
        clear(filters)


async def test_discovery_payloads_pass_home_assistants_schemas(
    hass: HomeAssistant, mqtt_gateway: Any
) -> None:
    prefix, node, filters = mqtt_gateway
    messages: dict[str, bytes] = {}
    for _ in range(20):  # until the first values and alarm states are out
        messages = await hass.async_add_executor_job(retained, filters)
        if f"plantguard/{node}/tank1/alarms" in messages:
            break
    configs = {t: json.loads(p) for t, p in messages.items() if t.startswith(f"{prefix}/")}
    components = {t.split("/")[1] for t in configs}
    assert components == {"sensor", "binary_sensor", "button"}
    assert len(configs) > 20

    for topic, config in configs.items():
        match = discovery.TOPIC_MATCHER.match(topic[len(prefix) + 1 :])
        assert match is not None, topic
        assert match.group("node_id") == node
        MQTT_ORIGIN_INFO_SCHEMA(config["origin"])
        validated = SCHEMAS[match.group("component")](config)
        assert set(config) <= set(validated), f"{topic}: HA dropped {set(config) - set(validated)}"

        if "value_template" not in config:
            continue
        state = messages[config["state_topic"]].decode()
        rendered = Template(config["value_template"], hass).async_render_with_possible_json_value(
            state
        )
        if match.group("component") == "sensor":
            assert rendered == "None" or float(rendered) == float(rendered), (topic, rendered)
        else:
            assert rendered in {"ON", "OFF", "None"}, (topic, rendered)

    level = configs[f"{prefix}/sensor/{node}/tank1_level/config"]
    assert level["unit_of_measurement"] == "%"
    temperature = configs[f"{prefix}/sensor/{node}/pump1_bearing_temp/config"]
    assert sensor.DISCOVERY_SCHEMA(temperature)["device_class"] == "temperature"
    alarm = configs[f"{prefix}/binary_sensor/{node}/tank1_level_limit/config"]
    attributes = Template(alarm["json_attributes_template"], hass)
    rendered = attributes.async_render_with_possible_json_value(
        messages[alarm["json_attributes_topic"]].decode()
    )
    assert {"active", "acknowledged", "shelved", "priority"} <= set(json.loads(rendered))
    assert messages[f"plantguard/{node}/status"] == b"online"


async def test_home_assistant_builds_the_entities_and_acknowledges(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, mqtt_gateway: Any, gateway: Gateway
) -> None:
    """HA's own MQTT integration (its client mocked below the broker connection) fed with
    the messages the real gateway left on the real broker: the entities it builds, and a
    button press that reaches the gateway and acknowledges as HA's broker user."""
    prefix, node, filters = mqtt_gateway
    messages: dict[str, bytes] = {}
    for _ in range(20):
        messages = await hass.async_add_executor_job(retained, filters)
        if f"plantguard/{node}/tank1/alarms" in messages:
            break
    for topic, payload in messages.items():
        if topic.startswith(f"{prefix}/"):  # HA's default discovery prefix
            async_fire_mqtt_message(hass, "homeassistant" + topic[len(prefix) :], payload)
    await hass.async_block_till_done()
    for topic, payload in messages.items():
        if topic.startswith("plantguard/"):
            async_fire_mqtt_message(hass, topic, payload)
    await hass.async_block_till_done()

    entities = er.async_get(hass)

    def state_of(domain: str, unique: str) -> Any:
        entity_id = entities.async_get_entity_id(domain, "mqtt", f"plantguard_{node}_{unique}")
        assert entity_id is not None, unique
        return hass.states.get(entity_id)

    level = state_of("sensor", "tank1_level")
    assert 40.0 < float(level.state) < 80.0
    assert level.attributes["unit_of_measurement"] == "%"
    temperature = state_of("sensor", "pump1_bearing_temp")
    assert temperature.attributes["device_class"] == "temperature"
    assert state_of("binary_sensor", "tank1_level_limit").state in {"on", "off"}
    device = dr.async_get(hass).async_get_device({("mqtt", f"plantguard_{node}_tank1")})
    assert device is not None
    assert (device.manufacturer, device.model) == ("Demo Vessels Ltd.", "BT-30")

    # A press publishes the alarm id to the acknowledge topic: forward it to the gateway.
    button = state_of("button", "tank1_level_limit_ack")
    await gateway.write_float(TANK1, 0, 95.0)  # level HH: the alarm becomes active
    await hass.services.async_call(
        "button", "press", {"entity_id": button.entity_id}, blocking=True
    )
    topic = f"plantguard/{node}/command/acknowledge"
    mqtt_mock.async_publish.assert_called_once_with(topic, "tank1.level.limit", 0, False)
    for _ in range(40):
        journal = await hass.async_add_executor_job(gateway.journal, "tank1.level.limit")
        if any(e["action"] == "activate" for e in journal):
            break
        await asyncio.sleep(0.25)
    await hass.async_add_executor_job(publish, topic, b"tank1.level.limit")
    for _ in range(40):
        journal = await hass.async_add_executor_job(gateway.journal, "tank1.level.limit")
        if any(e["action"] == "acknowledge" for e in journal):
            break
        await asyncio.sleep(0.25)
    acks = [e for e in journal if e["action"] == "acknowledge"]
    assert [e["user"] for e in acks] == ["homeassistant"]
    await gateway.write_float(TANK1, 0, float("nan"))
