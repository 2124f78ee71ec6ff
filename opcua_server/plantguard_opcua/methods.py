"""The A&C methods: Acknowledge, Confirm, AddComment, Enable, Disable, shelving,
Reset, RemoveFromService / PlaceInService, ConditionRefresh and ConditionRefresh2.

asyncua answers ``BadNothingToDo`` for all of them until a callback is linked.
Clients call either the type's method (``AcknowledgeableConditionType.Acknowledge``,
i=9111, with the condition as ObjectId) or the instance's copy
(``…/Alarms/level.limit.Acknowledge``), so both are linked to the same handler.

A handler only translates: it finds the condition, checks the EventId, and hands
the action to :meth:`plantguard.alarms.AlarmManager.act` with the calling
session's principal (:func:`.compat.calling_principal`).  The manager checks the
role, journals and publishes; its refusals become the standard status codes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from plantguard import alarms
from plantguard.alarms import Action, AlarmManager

from . import compat
from .conditions import ConditionPublisher
from .events import numeric_node, system_event

__all__ = ["STATUS_OF_ERROR", "link_methods"]

log = logging.getLogger(__name__)

_S = StatusCodes

#: Manager refusals → OPC UA status codes (Part 9 §5.5 / Part 4).
STATUS_OF_ERROR: dict[type[alarms.AlarmError], int] = {
    alarms.UnknownAlarm: _S.BadNodeIdUnknown,
    alarms.AccessDenied: _S.BadUserAccessDenied,
    alarms.InvalidComment: _S.BadInvalidArgument,
    alarms.AlreadyAcknowledged: _S.BadConditionBranchAlreadyAcked,
    alarms.AlreadyConfirmed: _S.BadConditionBranchAlreadyConfirmed,
    alarms.NotAcknowledged: _S.BadInvalidState,
    alarms.NotLatched: _S.BadInvalidState,
    alarms.AlreadyShelved: _S.BadConditionAlreadyShelved,
    alarms.NotShelved: _S.BadConditionNotShelved,
    alarms.ShelvingTimeOutOfRange: _S.BadShelvingTimeOutOfRange,
    alarms.AlreadyOutOfService: _S.BadConditionAlreadyDisabled,
    alarms.NotOutOfService: _S.BadConditionAlreadyEnabled,
    alarms.AlarmDisabled: _S.BadConditionDisabled,
}

#: Method browse name → (action, takes EventId and Comment).
_BY_NAME: dict[str, tuple[Action, bool]] = {
    "Acknowledge": (Action.ACKNOWLEDGE, True),
    "Confirm": (Action.CONFIRM, True),
    "AddComment": (Action.COMMENT, True),
    "Enable": (Action.RETURN_TO_SERVICE, False),
    "Disable": (Action.REMOVE_FROM_SERVICE, False),
    "PlaceInService": (Action.RETURN_TO_SERVICE, False),
    "RemoveFromService": (Action.REMOVE_FROM_SERVICE, False),
    "Reset": (Action.RESET, False),
    "TimedShelve": (Action.SHELVE, False),
    "OneShotShelve": (Action.ONE_SHOT_SHELVE, False),
    "Unshelve": (Action.UNSHELVE, False),
}

#: The types' method nodes, by the browse name of the instance copies.
_TYPE_METHODS: dict[int, str] = {
    ObjectIds.AcknowledgeableConditionType_Acknowledge: "Acknowledge",
    ObjectIds.AcknowledgeableConditionType_Confirm: "Confirm",
    ObjectIds.ConditionType_AddComment: "AddComment",
    ObjectIds.ConditionType_Enable: "Enable",
    ObjectIds.ConditionType_Disable: "Disable",
    ObjectIds.AlarmConditionType_PlaceInService: "PlaceInService",
    ObjectIds.AlarmConditionType_RemoveFromService: "RemoveFromService",
    ObjectIds.AlarmConditionType_Reset: "Reset",
    ObjectIds.ShelvedStateMachineType_TimedShelve: "TimedShelve",
    ObjectIds.ShelvedStateMachineType_OneShotShelve: "OneShotShelve",
    ObjectIds.ShelvedStateMachineType_Unshelve: "Unshelve",
    ObjectIds.AlarmConditionType_ShelvingState_TimedShelve: "TimedShelve",
    ObjectIds.AlarmConditionType_ShelvingState_OneShotShelve: "OneShotShelve",
    ObjectIds.AlarmConditionType_ShelvingState_Unshelve: "Unshelve",
}

Handler = Callable[..., Awaitable[Any]]


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


def _value(arg: Any) -> Any:
    return arg.Value if isinstance(arg, ua.Variant) else arg


def _text(arg: Any) -> str:
    value = _value(arg)
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    return "" if value is None else str(value)


class _Handlers:
    def __init__(
        self, server: Server, publisher: ConditionPublisher, manager: AlarmManager
    ) -> None:
        self.server = server
        self.publisher = publisher
        self.manager = manager

    def action(self, name: str) -> Handler:
        action, with_event = _BY_NAME[name]

        async def handler(object_id: ua.NodeId, *args: Any) -> Any:
            return await self._act(action, with_event, object_id, args)

        handler.__name__ = f"opcua_{name}"
        return handler

    async def _act(
        self, action: Action, with_event: bool, object_id: ua.NodeId, args: tuple[Any, ...]
    ) -> Any:
        alarm_id = self.publisher.alarm_of(object_id)
        if alarm_id is None:
            return _status(_S.BadNodeIdUnknown)
        principal = compat.calling_principal()
        if not principal.may(action.required_role):
            log.warning(
                "OPC UA %s of %s refused for %s",
                action.value,
                alarm_id,
                principal.name or "anonymous",
            )
            return _status(_S.BadUserAccessDenied)
        comment = ""
        duration: float | None = None
        if with_event:
            if len(args) < 2:
                return _status(_S.BadArgumentsMissing)
            event_id = _value(args[0])
            if not isinstance(event_id, bytes) or not self.publisher.knows_event(
                alarm_id, event_id
            ):
                return _status(_S.BadEventIdUnknown)
            comment = _text(args[1])
        elif action is Action.SHELVE:
            if not args:
                return _status(_S.BadArgumentsMissing)
            milliseconds = _value(args[0])
            if not isinstance(milliseconds, int | float):
                return _status(_S.BadTypeMismatch)
            duration = float(milliseconds) / 1000.0
        try:
            await self.manager.act(action, alarm_id, principal, comment=comment, duration=duration)
        except alarms.AlarmError as exc:
            code = next(
                (c for cls, c in STATUS_OF_ERROR.items() if isinstance(exc, cls)),
                _S.BadInvalidState,
            )
            log.info("OPC UA %s of %s refused: %s", action.value, alarm_id, exc)
            return _status(code)
        return []

    async def condition_refresh(self, object_id: ua.NodeId, *args: Any) -> Any:
        if not args:
            return _status(_S.BadArgumentsMissing)
        subscription_id = int(_value(args[0]))
        mid = int(_value(args[1])) if len(args) > 1 else None
        if not compat.subscription_exists(self.server, subscription_id):
            return _status(_S.BadSubscriptionIdInvalid)
        if mid is not None and not compat.subscription_exists(self.server, subscription_id, mid):
            return _status(_S.BadMonitoredItemIdInvalid)
        await compat.refresh(
            self.server,
            subscription_id,
            mid,
            start=system_event(ObjectIds.RefreshStartEventType, "ConditionRefresh started"),
            end=system_event(ObjectIds.RefreshEndEventType, "ConditionRefresh finished"),
            retained=self.publisher.retained(),
        )
        return []


def link_methods(server: Server, publisher: ConditionPublisher, manager: AlarmManager) -> int:
    """Link every A&C method (types' and instances'); return how many type nodes were linked."""
    handlers = _Handlers(server, publisher, manager)
    by_name = {name: handlers.action(name) for name in _BY_NAME}
    linked = 0
    for type_method, name in _TYPE_METHODS.items():
        server.link_method(server.get_node(numeric_node(type_method)), by_name[name])
        linked += 1
    # The instances' copies are rendered by the view, which hands them these handlers.
    publisher.view.method_handlers.update(by_name)
    for refresh in (
        ObjectIds.ConditionType_ConditionRefresh,
        ObjectIds.ConditionType_ConditionRefresh2,
    ):
        server.link_method(server.get_node(numeric_node(refresh)), handlers.condition_refresh)
        linked += 1
    return linked
