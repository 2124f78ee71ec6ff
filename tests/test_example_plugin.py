"""The example plugin of docs/plugins.md: the listing is the file, and the file works.

The example's code is executed exactly as docs/examples/example_plugin.py holds
it (and the doc shows that file verbatim), registered on the test kit's plugin
host, and run by the real engine: the driver's values reach the value table and
the rule's finding raises, then clears, its alarm.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from plantguard.alarms import AlarmState
from plantguard.host import PluginHost
from plantguard.model import Quality
from plantguard.plugin import DriverType, RuleType
from plantguard.testing import RunningSite, wait_for

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "example_plugin.py"
DOC = ROOT / "docs" / "plugins.md"

SITE = """
id: example
poll_groups: {default: {interval: 0.05}}
scan_interval: 0.05
store: {history: {flush_interval: 0.1}}
areas:
  - id: plant
    devices:
      - id: tank
        driver: gauge
        connection: {offset: 0.0}
        points:
          - {id: level, unit: "%", address: {value: 95.0}, rules: {above: {limit: 90}}}
          - {id: temperature, unit: degC, address: {value: 20.0}, rules: {above: {limit: 60}}}
"""


@pytest.fixture
def example() -> Iterator[ModuleType]:
    """docs/examples/example_plugin.py, executed as the module ``plantguard_example_plugin``."""
    spec = importlib.util.spec_from_file_location("plantguard_example_plugin", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_the_doc_shows_the_example_file_verbatim() -> None:
    doc = DOC.read_text(encoding="utf-8")
    listing = re.search(
        r"<!-- begin docs/examples/example_plugin.py -->\n```python\n(.*?)```\n"
        r"<!-- end docs/examples/example_plugin.py -->",
        doc,
        re.DOTALL,
    )
    assert listing is not None, "docs/plugins.md lost the example listing"
    assert listing.group(1) == EXAMPLE.read_text(encoding="utf-8")
    # The site shown under the listing is the one tested here.
    assert "driver: gauge" in doc
    assert "rules: {above: {limit: 90}}" in doc


def test_the_example_imports_only_the_plugin_api() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    imports = re.findall(r"^from (plantguard\S*) import", text, re.MULTILINE)
    assert imports == ["plantguard.plugin"]


async def test_example_driver_feeds_the_table_and_its_rule_raises_the_alarm(
    example: ModuleType, plantguard_host: PluginHost, running_site: RunningSite
) -> None:
    plantguard_host.register(example, "example")
    async with running_site(SITE) as engine:
        assert plantguard_host.provider(DriverType, "gauge") == "example"
        assert plantguard_host.provider(RuleType, "above") == "example"
        table = engine.table
        level, temperature = table.index["tank.level"], table.index["tank.temperature"]
        await wait_for(
            lambda: table.quality[level] == Quality.GOOD and table.quality[temperature] == 0
        )
        assert (table.values[level], table.values[temperature]) == (95.0, 20.0)

        alarms = engine.alarms.status
        await wait_for(lambda: alarms["tank.level.above"].state is AlarmState.UNACK)
        assert alarms["tank.level.above"].condition == "HI"
        assert alarms["tank.level.above"].message == "95 is above 90"
        assert alarms["tank.temperature.above"].state is AlarmState.NORMAL

        # A write goes to the driver; the next poll reads it, the rule clears the alarm.
        point = engine.site.points[level]
        await engine.drivers["tank"].write(point, 50.0)
        await wait_for(lambda: alarms["tank.level.above"].state is AlarmState.RTN_UNACK)
        store = engine.store
    journal = [r.action for r in store.journal("tank.level.above")]
    assert journal[0] == "activate"
    assert journal[-1] == "clear"
    assert 50.0 in store.trend("tank.level").value.tolist()
