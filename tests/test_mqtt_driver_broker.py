"""The MQTT driver's connection to its broker, against private Mosquitto instances
this test starts (tests/mqtt_broker.py): TLS with a CA and a client certificate and
a password from an environment variable or a file; a broker that goes away marks
the devices Bad (not connected) and is reconnected with backoff, subscriptions and all.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest
from mqtt_broker import Certificates, PrivateBroker, make_certificates

from plantguard.alarms import AlarmState
from plantguard.config import LoadedSite
from plantguard.drivers import DriverError
from plantguard.model import Quality
from plantguard.testing import RunningSite, wait_for
from plantguard_mqtt.broker import POOL, tls_context
from plantguard_mqtt.driver import MqttDriver
from plantguard_mqtt.plugin import MqttDriverType

SECRET = uuid.uuid4().hex  # made up per run: no password is written in this file


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pki"))


def _site(broker: str, topic: str) -> str:
    return f"""
id: plant
scan_interval: 0.1
poll_groups: {{default: {{interval: 0.05}}}}
areas:
  - id: yard
    devices:
      - id: meter
        name: Flow meter
        driver: mqtt
        connection:
          broker: {broker}
        points: [{{id: flow, address: {{topic: {topic}}}}}]
"""


def _driver(load: Callable[[str], LoadedSite], text: str) -> MqttDriver:
    loaded = load(text)
    device = loaded.site.devices[0]
    return MqttDriverType().create(
        device, loaded.connections[device.id], loaded.addresses[device.id]
    )


def _has_values(driver: MqttDriver) -> Callable[[], bool]:
    return lambda: driver.statistics["values"] == 1


async def _publish(
    port: int,
    topic: str,
    payload: bytes,
    *,
    context: ssl.SSLContext | None = None,
    password: str | None = None,
) -> None:
    username = "gateway" if password else None
    client = aiomqtt.Client(
        "127.0.0.1", port, tls_context=context, username=username, password=password
    )
    async with client:
        await client.publish(topic, payload, qos=1)


async def test_tls_with_client_certificate_and_password_from_env_and_file(
    load_site_text: Callable[[str], LoadedSite],
    certificates: Certificates,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = certificates
    monkeypatch.setenv("PLANTGUARD_TEST_MQTT_PASSWORD", SECRET)
    secret_file = tmp_path / "mqtt-password"
    secret_file.write_text(SECRET + "\n")
    tls = f"tls: {{cafile: {c.ca}, certfile: {c.client_cert}, keyfile: {c.client_key}}}"
    with PrivateBroker(tmp_path / "broker", certificates=c, users={"gateway": SECRET}) as broker:
        base = f"host: 127.0.0.1, port: {broker.port}, {tls}, username: gateway"
        for login in (
            "password_env: PLANTGUARD_TEST_MQTT_PASSWORD",
            f"password_file: {secret_file}",
        ):
            driver = _driver(load_site_text, _site(f"{{{base}, {login}}}", "meter/flow"))
            await driver.connect()
            try:
                assert driver.connection.broker.tls is not None
                context = tls_context(driver.connection.broker.tls)
                await _publish(broker.port, "meter/flow", b"12.5", context=context, password=SECRET)
                await wait_for(_has_values(driver))
                assert (await driver.read(driver.device.points)).values.tolist() == [12.5]
            finally:
                await driver.close()

        # A broker certificate signed by a CA the gateway does not trust: never connected.
        untrusted = tls.replace(str(c.ca), str(c.other_ca))
        wrong_ca = f"{{host: 127.0.0.1, port: {broker.port}, {untrusted}, timeout: 1}}"
        driver = _driver(load_site_text, _site(wrong_ca, "meter/flow"))
        try:
            with pytest.raises(DriverError, match="certificate verify failed"):
                await driver.connect()
        finally:
            await driver.close()

        # A wrong password: refused by the broker, said so.
        monkeypatch.setenv("PLANTGUARD_TEST_MQTT_PASSWORD", "not-" + SECRET)
        text = _site(f"{{{base}, password_env: PLANTGUARD_TEST_MQTT_PASSWORD, timeout: 1}}", "x")
        driver = _driver(load_site_text, text)
        try:
            with pytest.raises(DriverError, match="refused the login: not authorized"):
                await driver.connect()
        finally:
            await driver.close()
    assert len(POOL) == 0


async def test_broker_loss_marks_points_not_connected_and_reconnects(
    running_site: RunningSite, tmp_path: Path
) -> None:
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    try:
        settings = (
            f"{{host: 127.0.0.1, port: {broker.port}, reconnect_min: 0.1, reconnect_max: 0.4}}"
        )
        async with running_site(_site(settings, "meter/flow")) as engine:
            table, alarms = engine.table, engine.alarms
            at = table.index["meter.flow"]
            driver = engine.drivers["meter"]
            await wait_for(lambda: driver.connected)
            await _publish(broker.port, "meter/flow", b"3")
            await wait_for(lambda: table.quality[at] == Quality.GOOD)

            broker.stop()
            await wait_for(lambda: table.quality[at] == Quality.BAD_NOT_CONNECTED)
            await wait_for(lambda: alarms.status["meter.comm"].state is AlarmState.UNACK)
            assert table.values[at] == 3.0
            await asyncio.sleep(1.0)  # a few reconnect attempts while it is away

            broker.start()  # same port: the driver's client comes back by itself
            await wait_for(lambda: driver.connected)
            await _publish(broker.port, "meter/flow", b"4")  # subscriptions were renewed
            await wait_for(lambda: table.values[at] == 4.0)
            assert table.quality[at] == Quality.GOOD
            await wait_for(lambda: alarms.status["meter.comm"].state is AlarmState.RTN_UNACK)
    finally:
        broker.stop()


async def test_a_persistent_session_gets_what_came_while_the_gateway_was_away(
    load_site_text: Callable[[str], LoadedSite], tmp_path: Path
) -> None:
    with PrivateBroker(tmp_path / "broker") as broker:
        client_id = f"plantguard-test-{uuid.uuid4().hex[:8]}"
        settings = f"{{host: 127.0.0.1, port: {broker.port}, client_id: {client_id}, clean_session: false}}"
        first = _driver(load_site_text, _site(settings, "meter/flow"))
        await first.connect()
        await first.close()
        await _publish(broker.port, "meter/flow", b"7")  # QoS 1: queued for the session
        again = _driver(load_site_text, _site(settings, "meter/flow"))
        await again.connect()
        try:
            await wait_for(lambda: again.statistics["values"] == 1)
            assert (await again.read(again.device.points)).values.tolist() == [7.0]
        finally:
            await again.close()
