"""The demo: ``plantguard demo`` runs the simulated plant of ``demo_site.yaml``.

The core asks for it through the ``plantguard_demo_site`` hook (implemented in
:mod:`.plugin`) and knows nothing of the simulator, the Modbus driver or the OPC
UA server; which services and drivers the demo uses, and which settings the
command line's options change, is this module's business.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from plantguard.plugin import DemoOptions, DemoSite

from . import demo_records

__all__ = ["demo_site", "demo_site_text"]


def demo_site(options: DemoOptions) -> DemoSite:
    """The demo site for ``options``, and its seeding of maintenance plans."""
    return DemoSite(text=demo_site_text(options), seed=demo_records.seed)


def demo_site_text(options: DemoOptions) -> str:
    """The embedded demo site with the ports, database and scenario chosen on the command line."""
    package = resources.files(__package__ or "plantguard_sim")
    text = package.joinpath("demo_site.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    services = data.setdefault("services", {})
    services.setdefault("sim", {}).update(port=options.modbus_port, scenario=options.scenario)
    # The server's certificate lives beside the demo's database.
    db = options.db
    pki = (
        str(Path(db).expanduser().resolve().parent / "plantguard-demo-pki")
        if "://" not in db
        else "pki"
    )
    services.setdefault("opcua", {}).update(port=options.opcua_port, pki_dir=pki)
    if options.mqtt:
        broker, _, port = options.mqtt.rpartition(":")
        services["mqtt_publish"] = {
            "broker": {"host": broker, "port": int(port)},
            "sparkplug": {"group_id": "plantguard-demo", "edge_node_id": "demo"},
            "homeassistant": {"prefix": "homeassistant"},
            "roles": {"operator": "operator", "homeassistant": "operator"},
        }
    for area in data.get("areas", []):
        for device in area.get("devices", []):
            if device.get("driver") == "modbus":
                device.setdefault("connection", {})["port"] = options.modbus_port
    data.setdefault("store", {})["url"] = db
    # Relative paths of the embedded site are relative to its package.
    advisory = data.get("rules", {}).get("firmware_advisory")
    if advisory and not Path(advisory["file"]).is_absolute():
        advisory["file"] = str(package.joinpath(advisory["file"]))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
