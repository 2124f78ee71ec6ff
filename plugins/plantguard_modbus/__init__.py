"""plantguard_modbus — the Modbus TCP device driver plugin (``driver: modbus``).

:mod:`.models` holds the ``connection``/``address`` schemas, :mod:`.planner` the
block-read planner, :mod:`.splits` what is known of blocks the device refused,
:mod:`.driver` the driver, :mod:`.probe` the raw data of ``plantguard probe``,
:mod:`.plugin` the registration.
"""

from __future__ import annotations

__all__: list[str] = []
