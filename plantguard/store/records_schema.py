"""Tables of the device records: basic information and its change history,
connection-state history, maintenance plans and records.

Times in these tables are naive UTC ``DateTime`` values (records are exchanged
as ISO 8601 and must round-trip to the microsecond), except connection events,
which share the float epoch seconds of the history table they are read with,
and device counters, whose times are the gateway's clock as epoch seconds too.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import metadata

__all__ = [
    "connection_events",
    "device_changes",
    "device_counters",
    "devices",
    "maintenance_plans",
    "maintenance_records",
]

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("manufacturer", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("serial_number", sa.String(200), nullable=False),
    sa.Column("hardware_version", sa.String(64), nullable=False),
    sa.Column("firmware_version", sa.String(64), nullable=False),
    sa.Column("protocol", sa.String(64), nullable=False),
    sa.Column("address", sa.String(200), nullable=False),
    sa.Column("site", sa.String(64), nullable=False),
    sa.Column("area", sa.String(64), nullable=False),
    sa.Column("position", sa.String(200), nullable=False),
    sa.Column("commissioned", sa.Date, nullable=True),
    sa.Column("responsible", sa.String(200), nullable=False),
    sa.Column("safety_critical", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("rated", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

#: Who changed which field of a device's basic information, when, from what to what.
device_changes = sa.Table(
    "device_changes",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("time", sa.DateTime, nullable=False),
    sa.Column("user", sa.String(128), nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("old", sa.Text, nullable=True),
    sa.Column("new", sa.Text, nullable=True),
    sa.Index("ix_device_changes_device_time", "device_id", "time"),
)

#: Each change of a device's connection state: ``online``, ``offline`` or ``unknown``
#: (gateway not running).  Online rate, availability, MTBF and MTTR come from here.
connection_events = sa.Table(
    "connection_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("time", sa.Float(53), nullable=False),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Index("ix_connection_events_device_time", "device_id", "time"),
)

maintenance_plans = sa.Table(
    "maintenance_plans",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("interval", sa.Float(53), nullable=False),
    sa.Column("lead", sa.Float(53), nullable=False),
    sa.Column("point", sa.String(130), nullable=True),
    sa.Column("alarm", sa.String(200), nullable=True),
    sa.Column("start", sa.Date, nullable=True),
    sa.Column("overdue_priority", sa.String(8), nullable=False),
    sa.Column("procedure", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)

maintenance_records = sa.Table(
    "maintenance_records",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("plan_id", sa.String(100), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("performed_at", sa.DateTime, nullable=False),
    sa.Column("performer", sa.String(200), nullable=False),
    sa.Column("work_done", sa.Text, nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=True),
    sa.Column("certificate_number", sa.String(100), nullable=False),
    sa.Column("measurements", sa.Text, nullable=False),
    sa.Column("parts", sa.Text, nullable=False),
    sa.Column("meter_reading", sa.Float(53), nullable=True),
    sa.Column("next_due", sa.Date, nullable=True),
    sa.Column("attachments", sa.Text, nullable=False),
    sa.Index("ix_maintenance_records_device_time", "device_id", "performed_at"),
    sa.Index("ix_maintenance_records_plan_time", "plan_id", "performed_at"),
)

#: What a device's driver counted since the gateway started (``since``): messages,
#: malformed payloads …  (:meth:`plantguard.drivers.DeviceDriver.counters`), as last
#: written by the engine (``updated_at``, about every minute).  One row per counter.
device_counters = sa.Table(
    "device_counters",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("since", sa.Float(53), nullable=False),
    sa.Column("updated_at", sa.Float(53), nullable=False),
)
