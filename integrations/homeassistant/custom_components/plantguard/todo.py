"""The to-do list of maintenance and inspection that is due or overdue.

Each item is one plan of one device.  Ticking it off calls the gateway's
``RecordMaintenance`` method, so the record lands in the plant's maintenance
history (and the next due date moves) exactly as if it were entered at the
gateway; the list then re-reads the plans.
"""

from __future__ import annotations

from homeassistant.components.todo import TodoItem, TodoListEntity
from homeassistant.components.todo.const import TodoItemStatus, TodoListEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from . import PlantGuardConfigEntry
from .const import DOMAIN
from .coordinator import PlantGuardCoordinator, PlantGuardMaintenanceCoordinator
from .entity import gateway_device_info
from .services import async_record_maintenance, async_user_name

PARALLEL_UPDATES = 1  # one RecordMaintenance call at a time

DUE_STATES = ("due_soon", "overdue")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PlantGuardConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    data = entry.runtime_data
    async_add_entities([PlantGuardMaintenanceList(data.maintenance, data.coordinator)])


class PlantGuardMaintenanceList(
    CoordinatorEntity[PlantGuardMaintenanceCoordinator], TodoListEntity
):
    """Maintenance and inspection due, on the gateway's device."""

    _attr_has_entity_name = True
    _attr_translation_key = "maintenance_due"
    _attr_supported_features = TodoListEntityFeature.UPDATE_TODO_ITEM

    def __init__(
        self, coordinator: PlantGuardMaintenanceCoordinator, live: PlantGuardCoordinator
    ) -> None:
        super().__init__(coordinator)
        self._live = live
        self._attr_unique_id = f"{live.uri}-maintenance_due"
        self._attr_device_info = gateway_device_info(live)

    @property
    def todo_items(self) -> list[TodoItem] | None:
        plans = self.coordinator.data or []
        model = self._live.data.model
        items = []
        for plan in plans:
            if plan.state not in DUE_STATES:
                continue
            device = model.device(plan.device_key)
            where = device.name if device is not None else plan.device_key
            items.append(
                TodoItem(
                    uid=plan.key,
                    summary=f"{where}: {plan.title}",
                    status=TodoItemStatus.NEEDS_ACTION,
                    due=plan.due,
                    description=plan.state,
                )
            )
        return items

    async def async_update_todo_item(self, item: TodoItem) -> None:
        """Completing an item records the maintenance at the gateway."""
        if item.status != TodoItemStatus.COMPLETED:
            return
        plans = {plan.key: plan for plan in self.coordinator.data or []}
        plan = plans.get(item.uid or "")
        if plan is None:
            raise ServiceValidationError(translation_domain=DOMAIN, translation_key="unknown_plan")
        user = await async_user_name(self.hass, self._context)
        await async_record_maintenance(
            self._live, plan.device_key, plan.plan_id, item.summary or plan.title, user, "completed"
        )
        await self.coordinator.async_request_refresh()
