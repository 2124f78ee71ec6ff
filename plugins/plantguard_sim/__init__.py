"""plantguard_sim — a simulated plant served over Modbus TCP, for the demo and tests.

:mod:`.plant` computes the plant (pump, tank, gas detector) as a function of
plant time; :mod:`.server` serves it with pymodbus; :mod:`.plugin` registers it
as the ``sim`` service.  ``demo_site.yaml`` is the demo's site file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["demo_site_path"]


def demo_site_path() -> Path:
    """Path of the packaged demo site file (``demo_site.yaml``)."""
    return Path(str(resources.files(__name__) / "demo_site.yaml"))
