"""Fault drill: stop a worker between processing an entry and acknowledging it.

That is the state a crash at the worst moment leaves behind. The worker announces the held entry under
``<prefix>:held:<consumer>`` and waits: SIGKILL then simulates the crash (its entries must be claimed by another
worker), SIGUSR1 lets it continue as a worker that stalled (its commit must find the entry already accounted).
"""

from __future__ import annotations

import logging
import signal

from tunewatch.distributed.connection import RedisClient
from tunewatch.distributed.keys import KeyLayout

log = logging.getLogger(__name__)


def held_key(layout: KeyLayout, consumer: str) -> str:
    """Key under which a held consumer announces the entry it holds."""
    return f"{layout.prefix}:held:{consumer}"


def hold_before_ack(client: RedisClient, layout: KeyLayout, consumer: str, entry_id: str) -> None:
    """Announce ``entry_id`` as held and block until SIGUSR1 (SIGKILL ends the process)."""
    usr1 = {signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, usr1)  # blocked before announcing: a release cannot be missed
    try:
        client.set(held_key(layout, consumer), entry_id, px=600_000)
        log.warning("holding entry %s before its XACK (fault drill); SIGUSR1 releases it", entry_id)
        signal.sigwait(usr1)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, usr1)
