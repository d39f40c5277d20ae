"""The `newsclust` console script: the commands of service/cli, plus `serve`, which runs the workers of this package.

    newsclust [--home H] COMMAND ...        (python -m workers.console ... does the same)
"""

from __future__ import annotations

import os
import sys
import threading

import typer

from service import handoff
from service.cli import app, here, print_event, print_recovered, progress, say
from service.cli import run_app


@app.command()
def serve(ctx: typer.Context,
          role: str = typer.Option("all", "--role", help="all (default), ingest (take inbox files only) or rebuild (the schedule "
                                                        "only). Several workers need PostgreSQL and a Milvus server.")):
    """Watch the inbox and rebuild on schedule until SIGINT/SIGTERM."""
    from .serve import Service, WatcherDied, install_signal_handlers

    if role not in ("all", "ingest", "rebuild"):
        say(f"--role {role!r}: one of all, ingest, rebuild")
        raise typer.Exit(2)
    inv = here(ctx)
    settings = inv.settings()
    # an ingest-only worker of a shared home searches the Milvus server for placing arrivals; no local copy to keep
    with inv.opened(**({"vector_cache": False} if settings.shared and role == "ingest" else {})) as a:
        if role != "all" and not a.settings.shared:
            say("--role ingest/rebuild needs a home several processes can write: database_url = postgresql+psycopg://... and a Milvus server")
            raise typer.Exit(2)
        try:
            with handoff.writer(a, worker=True) as recovered:
                print_recovered(recovered)
                stop = threading.Event()
                install_signal_handlers(stop)

                service = Service(a, print_event, role=role)
                with progress("loading the model and the clustering code (the first start compiles it: a minute or two)"):
                    service.open()
                who = f" as worker {a.settings.resolved_worker_name} ({role})" if a.settings.shared else ""
                api = f"; queries at {service.api_url}" if service.api_url else ""
                say(f"serving {a.settings.home}{who}: inbox {a.settings.inbox}, rebuild every {a.settings.rebuild_interval_s}s{api}")
                sys.stdout.flush()
                try:
                    service.run(stop)
                except WatcherDied as exc:
                    say(f"stopping: {exc}; a supervisor should start serve again")
                    sys.stdout.flush()
                    os._exit(3)
                if service.rebuilding.is_set():
                    say(f"stopped; {service.stop_note}")
                    sys.stdout.flush()
                    os._exit(0)  # the rebuild thread cannot be interrupted; the OS drops the writer lock
                say("stopped")
        except handoff.Busy as busy:
            say(f"another newsclust process (pid {busy}) already serves this home")
            raise typer.Exit(1)


def run() -> None:
    """The console script's entry point."""
    run_app(sys.argv[1:])


if __name__ == "__main__":
    run()
