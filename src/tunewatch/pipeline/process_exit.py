"""A quicker interpreter exit after a replay: the garbage collector's exit passes skip the start-up objects.

At exit CPython clears every module and runs full garbage collections over what is left: after a replay that is
Numba's type registries, Polars', NumPy's and SciPy's modules and the pipeline's own (~150 K tracked objects),
scanned several times over, ~0.3-0.5 s of CPU on the 2-core machine, as much as the imports of half the
packages. :func:`collect_then_freeze_at_exit` makes the process, when it exits, first collect its garbage once
(so objects that were already garbage are finalised as before) and then freeze what is still alive
(:func:`gc.freeze`): the exit's collections skip it, the objects are still released and the memory returned with
the process. Nothing the program writes depends on it: files are closed by the code that opened them, standard
streams are flushed by the interpreter whatever the collector does.

>>> import tunewatch.pipeline.process_exit as process_exit
>>> process_exit.collect_then_freeze_at_exit()
>>> process_exit.collect_then_freeze_at_exit()  # registered once, however often it is asked for
>>> process_exit._registered
True
"""

from __future__ import annotations

import atexit
import gc
import threading

_lock = threading.Lock()
_registered = False


def _collect_then_freeze() -> None:
    """Collect the garbage there is, then leave every live object out of the collector's further passes."""
    gc.collect()
    gc.freeze()


def collect_then_freeze_at_exit() -> None:
    """At interpreter exit, collect once and freeze the survivors (see the module docstring); idempotent."""
    global _registered
    with _lock:
        if not _registered:
            atexit.register(_collect_then_freeze)
            _registered = True


__all__ = ["collect_then_freeze_at_exit"]
