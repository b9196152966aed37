"""A process that replayed freezes its live objects at exit, after one last collection of its garbage."""

from __future__ import annotations

import subprocess
import sys

# atexit runs handlers last-registered first: the probe, registered before the replay's hook, runs after it
_PROBE = """
import atexit, gc
atexit.register(lambda: print("frozen", gc.get_freeze_count(), "finalised", finalised))
finalised = []

class Cycle:
    def __init__(self):
        self.me = self
    def __del__(self):
        finalised.append(1)

from tunewatch.pipeline.process_exit import collect_then_freeze_at_exit
collect_then_freeze_at_exit()
collect_then_freeze_at_exit()
gc.disable()  # the cycle stays garbage until the exit hook's collection
Cycle()
print("frozen", gc.get_freeze_count())
"""


def test_the_exit_hook_collects_the_garbage_then_freezes_the_survivors() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120)
    before, after = done.stdout.splitlines()
    assert before == "frozen 0"
    frozen, count, finalised, objects = after.split(" ", 3)
    assert (frozen, finalised, objects) == ("frozen", "finalised", "[1]")  # the garbage was finalised
    assert int(count) > 1000  # the modules' objects were frozen
