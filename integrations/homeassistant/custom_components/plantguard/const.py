"""Constants of the PlantGuard integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "plantguard"
LOGGER = logging.getLogger(__package__)

CONF_SECURITY_MODE: Final = "security_mode"

#: Security modes offered in the config flow; values are what the entry stores.
SECURITY_NONE: Final = "none"
SECURITY_SIGN: Final = "sign"
SECURITY_SIGN_AND_ENCRYPT: Final = "sign_and_encrypt"
SECURITY_MODES: Final = (SECURITY_NONE, SECURITY_SIGN, SECURITY_SIGN_AND_ENCRYPT)

#: Every node PlantGuard adds lives in this namespace (docs/opcua.md).
NAMESPACE_URI: Final = "urn:plantguard"

#: First wait before reconnecting to a lost gateway, and the longest wait.
RECONNECT_MIN_DELAY: Final = 2.0
RECONNECT_MAX_DELAY: Final = 60.0

#: How often the client checks the gateway is alive (one read of ServerStatus).
#: A closed TCP connection is noticed at once; this catches a silent network.
WATCHDOG_INTERVAL: Final = 5.0

#: How often maintenance due dates are read: they change in days, not seconds.
MAINTENANCE_INTERVAL: Final = timedelta(minutes=10)

#: Prefix of the comment sent with an acknowledge, naming the Home Assistant user
#: who acted.  The gateway journals the OPC UA account (ClientUserId) and the
#: comment; this prefix puts the person behind the shared account in the journal.
HA_USER_PREFIX: Final = "[Home Assistant: {user}]"

ATTR_COMMENT: Final = "comment"
ATTR_DURATION: Final = "duration"
ATTR_DEVICE_ID: Final = "device_id"
ATTR_PLAN: Final = "plan"
ATTR_SUMMARY: Final = "summary"
ATTR_RESULT: Final = "result"
ATTR_TITLE: Final = "title"
ATTR_DESCRIPTION: Final = "description"
ATTR_DEVICE: Final = "device"
ATTR_POINT: Final = "point"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"

SERVICE_ACKNOWLEDGE: Final = "acknowledge"
SERVICE_CONFIRM: Final = "confirm"
SERVICE_ADD_COMMENT: Final = "add_comment"
SERVICE_SHELVE: Final = "shelve"
SERVICE_UNSHELVE: Final = "unshelve"
SERVICE_REMOVE_FROM_SERVICE: Final = "remove_from_service"
SERVICE_PLACE_IN_SERVICE: Final = "place_in_service"
SERVICE_RECORD_MAINTENANCE: Final = "record_maintenance"
SERVICE_REPORT_HAZARD: Final = "report_hazard"
