"""MQTT topic names and filters (MQTT 3.1.1, 4.7): validation and matching.

Why here: a filter with ``#`` anywhere but last, or a command topic with a
wildcard, is a site-file error, found at load; and the per-message routing
routes exact topics by one dict lookup, leaving :func:`matches` (split and
compare) to the few filters with wildcards.
"""

from __future__ import annotations

__all__ = ["check_filter", "check_topic", "is_wildcard", "matches"]

_MAX_TOPIC = 65535


def check_topic(topic: str) -> str:
    """A topic name a message can be published to: no wildcards, not empty."""
    if not topic:
        raise ValueError("a topic cannot be empty")
    if "+" in topic or "#" in topic:
        raise ValueError(f"topic {topic!r} has a wildcard (+ or #); wildcards are for filters")
    return _common(topic)


def check_filter(topic: str) -> str:
    """A subscription filter: ``+`` fills a whole level, ``#`` only the last."""
    if not topic:
        raise ValueError("a topic filter cannot be empty")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"topic filter {topic!r}: # must be a whole level, and the last")
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {topic!r}: + must be a whole level")
    return _common(topic)


def _common(topic: str) -> str:
    if "\x00" in topic:
        raise ValueError(f"topic {topic!r} contains a NUL character")
    if len(topic.encode()) > _MAX_TOPIC:
        raise ValueError(f"topic is longer than {_MAX_TOPIC} bytes")
    return topic


def is_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` is matched by ``topic_filter`` (``a/#`` matches ``a`` too)."""
    want = topic_filter.split("/")
    have = topic.split("/")
    if have[0].startswith("$") and want[0] in ("+", "#"):
        return False  # 4.7.2: wildcards at the first level do not match $SYS …
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)
