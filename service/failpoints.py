"""Failpoints: named places where a test can make the process kill itself, to prove crash safety phase by phase.

Off unless the `failpoint` setting names one, as PHASE or PHASE:N (die the Nth time PHASE is reached).
Phases: parse, embed, milvus, sqlite, move, rebuild. SIGKILL, not an exception: nothing gets to clean up.

`failpoint = "outages"` instead lets a soak test cut the vector store off: while the file
HOME/faults/vector-store-down exists, every call to the vector store raises faults.StoreUnavailable, as the
store's adapter does for a stopped server.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from .faults import StoreUnavailable

PHASES = ("parse", "embed", "milvus", "sqlite", "move", "rebuild")


OUTAGES = "outages"


class Failpoints:
    def __init__(self, spec: str = ""):
        self.outages = spec == OUTAGES
        self.phase, _, nth = ("", "", "") if self.outages else spec.partition(":")
        if self.phase and self.phase not in PHASES:
            raise ValueError(f"unknown failpoint {self.phase!r}: one of {', '.join(PHASES)}")
        self.remaining = int(nth or 1)

    def reach(self, phase: str) -> None:
        if phase != self.phase:
            return
        self.remaining -= 1
        if self.remaining <= 0:
            os.kill(os.getpid(), signal.SIGKILL)


class OutageSwitch:
    """Wraps a vector store: while `switch` exists, every call fails the way an unreachable server does."""

    def __init__(self, store, switch: Path):
        self._store = store
        self._switch = switch

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if not callable(attr) or name in ("close", "release"):
            return attr

        def call(*args, **kwargs):
            if self._switch.exists():
                raise StoreUnavailable(f"vector store unreachable (fault injected by {self._switch.name})")
            return attr(*args, **kwargs)

        return call
