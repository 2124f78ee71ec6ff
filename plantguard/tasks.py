"""Stopping asyncio tasks for good, on every Python the gateway supports.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result instead of raising
when a cancellation arrives in the same loop turn as that result (CPython
gh-86296, fixed in 3.12).  Client libraries wait for every broker reply that way
(aiomqtt 1.x does), so one ``task.cancel()`` can be lost and a service's stop hang
forever.  :func:`cancel_and_wait` repeats the cancellation until the task ends,
within a bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["cancel_and_wait"]

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any], *, what: str, timeout: float = 5.0) -> None:
    """Cancel ``task`` until it has ended, at most ``timeout`` seconds (then it is left
    running and an error logged); a cancellation the task swallowed is repeated."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.error("%s did not end within %g s of being cancelled", what, timeout)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.1, remaining))
