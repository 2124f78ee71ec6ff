"""The MQTT driver's pure parts: JSON paths, topic filters, numbers and times from
payloads, the connection schema, and the site-file example of docs/mqtt.md."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest
from mqtt_broker import make_certificates
from pydantic import ValidationError

from plantguard.build import check_site
from plantguard.config import load_site
from plantguard.host import PluginHost
from plantguard_mqtt.decode import NotANumber, as_number, as_time, plain_number
from plantguard_mqtt.driver import MqttDriver
from plantguard_mqtt.models import BrokerSettings, MqttAddress, MqttConnection, MqttTls
from plantguard_mqtt.paths import PathMissing, extract, parse_path
from plantguard_mqtt.topics import check_filter, check_topic, matches

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("$.a.b", ("a", "b")),
        ("a.b[0]", ("a", "b", 0)),
        ("$['a b'][-1]", ("a b", -1)),
        ('$["x"].y', ("x", "y")),
        ("[2]", (2,)),
        ("$", ()),
    ],
)
def test_json_paths_parse(text: str, parsed: tuple[object, ...]) -> None:
    assert parse_path(text) == parsed


def test_json_path_extraction_says_where_it_stopped() -> None:
    doc = {"a": {"b": [1, {"c": 2}]}, "s": "text"}
    assert extract(doc, parse_path("$.a.b[1].c")) == 2
    assert extract(doc, ()) is doc
    with pytest.raises(PathMissing, match=r"no \$\.a\.x in the payload"):
        extract(doc, parse_path("$.a.x"))
    with pytest.raises(PathMissing, match=r"no \$\.a\.b\[5\] in the payload"):
        extract(doc, parse_path("$.a.b[5]"))
    with pytest.raises(PathMissing, match=r"no \$\.a\.b\.c: a list there"):
        extract(doc, parse_path("$.a.b.c"))
    with pytest.raises(PathMissing, match=r"no \$\[0\]: an object there"):
        extract(doc, parse_path("[0]"))
    with pytest.raises(ValueError, match="does not parse"):
        parse_path("$.a..b")


def test_topic_filters_and_matching() -> None:
    assert matches("a/+/c", "a/b/c")
    assert not matches("a/+/c", "a/b/d/c")
    assert matches("a/#", "a")
    assert matches("a/#", "a/b/c")
    assert not matches("a/b", "a/b/c")
    assert not matches("#", "$SYS/broker/uptime")
    assert matches("$SYS/#", "$SYS/broker/uptime")
    for bad in ("", "a/b#", "a/#/b", "a/b+"):
        with pytest.raises(ValueError, match=r"empty|whole level"):
            check_filter(bad)
    for bad in ("", "a/+", "a/#", "a\x00b", "x" * 70_000):
        with pytest.raises(ValueError, match=r"empty|wildcard|NUL|longer than"):
            check_topic(bad)


def test_numbers_and_times() -> None:
    assert as_number(True) == 1.0
    assert as_number(3) == 3.0
    for bad in (None, "3", [1], {"a": 1}, math.nan, math.inf):
        with pytest.raises(NotANumber):
            as_number(bad)
    assert plain_number(b" 2.5 ") == 2.5
    assert plain_number(b"OFF") == 0.0
    for payload in (b"", b"nan", b"-inf", b"\xff"):
        with pytest.raises(NotANumber):
            plain_number(payload)
    assert as_time(1_700_000_000) == 1_700_000_000.0
    assert as_time(1_700_000_000_500) == 1_700_000_000.5
    assert as_time("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert as_time("2023-11-14T22:13:20") == 1_700_000_000.0
    for bad in (True, -1, math.inf, "yesterday", None, [1]):
        with pytest.raises(ValueError, match=r"is not a time|is not ISO 8601"):
            as_time(bad)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"host": "b", "password_env": "X"}, "a password needs username"),
        ({"host": "b", "username": "u", "password_env": "X", "password_file": "f"}, "not both"),
        ({"host": "b", "clean_session": False}, "needs a client_id"),
        ({"host": "b", "reconnect_min": 5, "reconnect_max": 1}, "reconnect_min is above"),
        ({"host": "b", "tls": {"cafile": "ca", "keyfile": "k"}}, "keyfile is given without"),
        ({"host": "b", "tls": {"cafile": "ca", "certfile": "c"}}, "certfile is given without"),
    ],
)
def test_broker_settings_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BrokerSettings.model_validate(data)


def test_connection_and_address_rules() -> None:
    broker = BrokerSettings(host="b", tls=MqttTls(cafile="ca.pem"))
    assert (broker.tcp_port, broker.endpoint) == (8883, "mqtts://b:8883")
    with pytest.raises(ValidationError, match="leave will out"):
        MqttConnection.model_validate(
            {
                "broker": {"host": "b"},
                "will": {"topic": "s"},
                "sparkplug": {"group": "g", "node": "n"},
            }
        )
    with pytest.raises(ValidationError, match="does not parse"):
        MqttConnection.model_validate({"broker": {"host": "b"}, "timestamp": "$.["})
    with pytest.raises(ValidationError, match="takes no json"):
        MqttAddress.model_validate({"metric": "m", "json": "$.a"})
    with pytest.raises(ValidationError, match="must contain"):
        MqttAddress.model_validate({"topic": "t", "command": "on"})
    with pytest.raises(ValidationError, match="pattern"):
        MqttConnection.model_validate(
            {"broker": {"host": "b"}, "sparkplug": {"group": "g/x", "node": "n"}}
        )


def test_the_docs_site_example_is_valid_and_shares_one_client(
    plantguard_host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "docs" / "mqtt.md").read_text(encoding="utf-8")
    example = re.search(r"### A complete site file\n\n```yaml\n(.*?)```", text, re.S)
    assert example is not None
    pki = make_certificates(tmp_path / "pki")
    shutil.copy(pki.ca, tmp_path / "pki" / "broker-ca.pem")
    shutil.copy(pki.client_cert, tmp_path / "pki" / "gateway.pem")
    shutil.copy(pki.client_key, tmp_path / "pki" / "gateway.key")
    (tmp_path / "site.yaml").write_text(example.group(1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLANTGUARD_MQTT_PASSWORD", "made-up")
    plantguard_host.start()
    parts = check_site(load_site(tmp_path / "site.yaml", plantguard_host), plantguard_host)
    drivers = [d for d in parts.drivers.values() if isinstance(d, MqttDriver)]
    assert [d.device.id for d in drivers] == ["gas1", "press1", "line1_edge"]
    assert len({d.connection.broker for d in drivers}) == 1, "equal settings: one client"
