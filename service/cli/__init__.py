"""The `newsclust` commands: thin, over the use cases (bootstrap builds the App they run on).

app.py holds the Typer app, the global options and the exit statuses; writes.py the commands that
write the home (ingest, rebuild, demo: the writer lock or the hand-off to the process holding it);
reads.py those that read it (status, search, story, topic, report, export); output.py what they print.
The console script, with the long-running `serve`, is workers/console.py: nothing here imports the
workers or an adapter.
"""

from __future__ import annotations

from . import writes, reads  # noqa: F401 — the commands hang themselves on the app as they are imported
from .app import Invocation, app, here, hoist_global_options, run_app
from .output import print_event, print_recovered, progress, say

__all__ = ["Invocation", "app", "here", "hoist_global_options", "print_event", "print_recovered", "progress", "run_app", "say"]
