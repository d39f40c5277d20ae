"""Failpoints: named places where a test can make the process kill itself, to prove crash safety phase by phase.

Off unless the `failpoint` setting names one, as PHASE or PHASE:N (die the Nth time PHASE is reached).
Phases: parse, embed, milvus, sqlite, move, rebuild. SIGKILL, not an exception: nothing gets to clean up.
"""

from __future__ import annotations

import os
import signal

PHASES = ("parse", "embed", "milvus", "sqlite", "move", "rebuild")


class Failpoints:
    def __init__(self, spec: str = ""):
        self.phase, _, nth = spec.partition(":")
        if self.phase and self.phase not in PHASES:
            raise ValueError(f"unknown failpoint {self.phase!r}: one of {', '.join(PHASES)}")
        self.remaining = int(nth or 1)

    def reach(self, phase: str) -> None:
        if phase != self.phase:
            return
        self.remaining -= 1
        if self.remaining <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
