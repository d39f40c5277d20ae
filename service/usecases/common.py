"""What the use cases share: the progress callback and a best-effort ledger note."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("newsclust")


Progress = Callable[[str, int], None]  # (stage, items done) — the CLI shows it, tests ignore it


def no_progress(stage: str, n: int) -> None:
    pass


def best_effort(fn, *args) -> None:
    """A ledger note while the database may be the thing failing: worth a try, not worth failing for."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not record it in the ledger (%s): %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
