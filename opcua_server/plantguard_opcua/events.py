"""Condition events as immutable snapshots with every standard A&C field.

asyncua's event classes carry only some of the fields of Part 9 (no
ConfirmedState, ShelvingState, EnabledState/Id …) and resolve a select clause by
the first element of its browse path only.  A :class:`ConditionEvent` is a flat
map from browse path (``"ActiveState/Id"``) to Variant, built once per
transition by :func:`condition_fields`, and answers any select clause a client
sends — unknown fields come back as null Variants, as the standard requires.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from plantguard.alarms import AlarmStatus, Shelving

__all__ = [
    "ConditionEvent",
    "ConditionInfo",
    "condition_fields",
    "new_event_id",
    "numeric_node",
    "system_event",
]

_V = ua.VariantType

_LIMIT_STATES = {
    "HH": (ObjectIds.ExclusiveLimitStateMachineType_HighHigh, "HighHigh"),
    "H": (ObjectIds.ExclusiveLimitStateMachineType_High, "High"),
    "L": (ObjectIds.ExclusiveLimitStateMachineType_Low, "Low"),
    "LL": (ObjectIds.ExclusiveLimitStateMachineType_LowLow, "LowLow"),
}
_SHELVING_STATES = {
    Shelving.NONE: (ObjectIds.ShelvedStateMachineType_Unshelved, "Unshelved"),
    Shelving.TIMED: (ObjectIds.ShelvedStateMachineType_TimedShelved, "TimedShelved"),
    Shelving.ONE_SHOT: (ObjectIds.ShelvedStateMachineType_OneShotShelved, "OneShotShelved"),
}


def numeric_node(identifier: int) -> ua.NodeId:
    """A namespace-0 numeric NodeId (``i=…``)."""
    return ua.NodeId(ua.Int32(identifier))


def new_event_id() -> bytes:
    return uuid.uuid4().bytes


@dataclass(frozen=True, slots=True)
class ConditionInfo:
    """What does not change about one alarm's condition: its nodes, names and types."""

    alarm_id: str
    node_id: ua.NodeId
    device_node: ua.NodeId
    source_node: ua.NodeId
    source_name: str
    condition_name: str
    event_type: ua.NodeId
    condition_class: ua.NodeId
    condition_class_name: str
    is_limit: bool


class ConditionEvent:
    """One event, as sent to every monitored item whose filter it passes."""

    def __init__(
        self,
        fields: dict[str, ua.Variant],
        *,
        emitting_node: ua.NodeId,
        condition_id: ua.NodeId | None = None,
    ) -> None:
        self.fields = fields
        self.emitting_node = emitting_node
        #: ``ConditionId`` (a select clause with an empty browse path and AttributeId NodeId).
        self.NodeId = condition_id
        self.EventType: ua.NodeId = fields["EventType"].Value
        self.Retain = bool(fields["Retain"].Value) if "Retain" in fields else False

    @property
    def event_id(self) -> bytes:
        value: bytes = self.fields["EventId"].Value
        return value

    def field(self, path: str) -> ua.Variant | None:
        return self.fields.get(path)

    def at(self, emitting_node: ua.NodeId) -> ConditionEvent:
        """The same event, emitted by another notifier (the Server or the device)."""
        clone = copy.copy(self)
        clone.emitting_node = emitting_node
        return clone

    def to_event_fields(
        self, select_clauses: Sequence[ua.SimpleAttributeOperand]
    ) -> list[ua.Variant]:
        out = []
        for clause in select_clauses:
            if not clause.BrowsePath:
                if clause.AttributeId == AttributeIds.NodeId and self.NodeId is not None:
                    out.append(ua.Variant(self.NodeId, _V.NodeId))
                else:
                    out.append(ua.Variant())
                continue
            variant = self.fields.get("/".join(q.Name for q in clause.BrowsePath))
            out.append(ua.Variant() if variant is None else variant)
        return out

    def __getattr__(self, name: str) -> Any:
        # asyncua's own evaluator (if ever used) reads fields as attributes.
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name].Value
        raise AttributeError(name)


def _two_state(
    fields: dict[str, ua.Variant], name: str, on: bool, true_text: str, false_text: str
) -> None:
    text = true_text if on else false_text
    fields[name] = ua.Variant(ua.LocalizedText(text), _V.LocalizedText)
    fields[f"{name}/Id"] = ua.Variant(on, _V.Boolean)
    fields[f"{name}/EffectiveDisplayName"] = ua.Variant(ua.LocalizedText(text), _V.LocalizedText)


def _utc(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC)


def condition_fields(
    info: ConditionInfo,
    status: AlarmStatus,
    *,
    event_id: bytes,
    time: float,
    message: str,
    client_user: str,
    comment: str,
    severity: int,
    last_severity: int,
    max_time_shelved: float,
) -> dict[str, ua.Variant]:
    """Every field of an alarm condition event for ``status`` at ``time``."""
    now = dt.datetime.now(dt.UTC)
    when = _utc(time)
    f: dict[str, ua.Variant] = {
        "EventId": ua.Variant(event_id, _V.ByteString),
        "EventType": ua.Variant(info.event_type, _V.NodeId),
        "SourceNode": ua.Variant(info.source_node, _V.NodeId),
        "SourceName": ua.Variant(info.source_name, _V.String),
        "Time": ua.Variant(when, _V.DateTime),
        "ReceiveTime": ua.Variant(now, _V.DateTime),
        "Message": ua.Variant(ua.LocalizedText(message), _V.LocalizedText),
        "Severity": ua.Variant(max(1, min(1000, severity)), _V.UInt16),
        "ConditionClassId": ua.Variant(info.condition_class, _V.NodeId),
        "ConditionClassName": ua.Variant(
            ua.LocalizedText(info.condition_class_name), _V.LocalizedText
        ),
        "ConditionName": ua.Variant(info.condition_name, _V.String),
        "BranchId": ua.Variant(ua.NodeId(), _V.NodeId),
        "Retain": ua.Variant(status.retain, _V.Boolean),
        "Quality": ua.Variant(ua.StatusCode(ua.UInt32(StatusCodes.Good)), _V.StatusCode),
        "LastSeverity": ua.Variant(max(1, min(1000, last_severity)), _V.UInt16),
        "Comment": ua.Variant(ua.LocalizedText(comment), _V.LocalizedText),
        "ClientUserId": ua.Variant(client_user, _V.String),
        "InputNode": ua.Variant(info.source_node, _V.NodeId),
        "SuppressedOrShelved": ua.Variant(status.suppressed or status.shelved, _V.Boolean),
        "MaxTimeShelved": ua.Variant(max_time_shelved * 1000.0, _V.Double),
    }
    _two_state(f, "EnabledState", not status.out_of_service, "Enabled", "Disabled")
    _two_state(f, "ActiveState", status.state.active, "Active", "Inactive")
    _two_state(f, "AckedState", status.state.acknowledged, "Acknowledged", "Unacknowledged")
    _two_state(f, "ConfirmedState", status.confirmed, "Confirmed", "Unconfirmed")
    _two_state(f, "SuppressedState", status.suppressed, "Suppressed", "Unsuppressed")
    _two_state(f, "OutOfServiceState", status.out_of_service, "Out of Service", "In Service")
    _two_state(f, "LatchedState", status.state.latched, "Latched", "Unlatched")
    shelving_id, shelving_name = _SHELVING_STATES[status.shelving]
    f["ShelvingState/CurrentState"] = ua.Variant(ua.LocalizedText(shelving_name), _V.LocalizedText)
    f["ShelvingState/CurrentState/Id"] = ua.Variant(numeric_node(shelving_id), _V.NodeId)
    remaining = 0.0
    if status.shelved_until is not None:
        remaining = max(0.0, status.shelved_until - time) * 1000.0
    f["ShelvingState/UnshelveTime"] = ua.Variant(remaining, _V.Double)
    if info.is_limit:
        limit = _LIMIT_STATES.get(status.condition) if status.state.active else None
        if limit is not None:
            f["LimitState/CurrentState"] = ua.Variant(ua.LocalizedText(limit[1]), _V.LocalizedText)
            f["LimitState/CurrentState/Id"] = ua.Variant(numeric_node(limit[0]), _V.NodeId)
    return f


def system_event(event_type: int, message: str, severity: int = 100) -> ConditionEvent:
    """A plain event from the Server object (RefreshStart / RefreshEnd)."""
    server = numeric_node(ObjectIds.Server)
    fields = {
        "EventId": ua.Variant(new_event_id(), _V.ByteString),
        "EventType": ua.Variant(numeric_node(event_type), _V.NodeId),
        "SourceNode": ua.Variant(server, _V.NodeId),
        "SourceName": ua.Variant("Server", _V.String),
        "Time": ua.Variant(dt.datetime.now(dt.UTC), _V.DateTime),
        "ReceiveTime": ua.Variant(dt.datetime.now(dt.UTC), _V.DateTime),
        "Message": ua.Variant(ua.LocalizedText(message), _V.LocalizedText),
        "Severity": ua.Variant(severity, _V.UInt16),
    }
    return ConditionEvent(fields, emitting_node=server)
