"""The Typer app the commands hang on, its global options, and how a failure reads (one line and an exit status).

The console script (workers/console.py) adds `serve` and runs it; `service/cli` never imports the
workers or an adapter: the commands reach the home through bootstrap and the use cases.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from ..config import describe_settings, load_settings
from .output import say

# plain help (rich_markup_mode=None): typer's rich panels showed every flag as `--json <bool>`, which reads as if
# `--json true` were accepted (it is not: --json is a flag)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Incremental streaming clustering of news headlines.")


@dataclass(frozen=True)
class Invocation:
    """What the global options chose for this one command (Click hands it down as ctx.obj)."""

    home: Optional[Path] = None

    def settings(self, **overrides):
        return load_settings(home=self.home, **overrides)

    @contextmanager
    def opened(self, **overrides):
        """The App of this home for one command, closed whatever happens."""
        from ..bootstrap import App

        a = App(self.settings(**overrides))
        try:
            yield a
        finally:
            a.close()

    def existing_home(self) -> Path:
        """A read of a home that does not exist is an error (exit 2) that creates nothing, not an empty home and zeros."""
        s = self.settings()
        if not s.home.is_dir() and not s.database_url:  # a shared home's history lives in its database server
            typer.echo(f"newsclust: no home at {s.home} (`newsclust serve`, `ingest` or `demo` make one; --home or NEWSCLUST_HOME "
                       "chooses which)", err=True)
            raise typer.Exit(2)
        return s.home

    def api(self):
        """The running serve's query API for this home (workers/api.py), or None: then the command reads directly."""
        from ..api_client import find_api

        s = self.settings()
        return find_api(s.home, s.api_token)


def here(ctx: typer.Context) -> Invocation:
    return ctx.find_object(Invocation) or Invocation()


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(None, "--home", help="Service home (default: $NEWSCLUST_HOME, else ./newsclust-home); before or after the command."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the service does."),
    help_settings: bool = typer.Option(False, "--help-settings", help="List every setting with its default and exit."),
):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if help_settings:
        for name, default, help in describe_settings():
            say(f"{name:22} {default!s:28} {help}  [env NEWSCLUST_{name.upper()}]")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        say(ctx.get_help())
        raise typer.Exit()
    ctx.obj = Invocation(home)


GLOBAL_OPTIONS = {"--home": True, "--verbose": False, "-v": False, "--help-settings": False}


def hoist_global_options(argv: list[str]) -> list[str]:
    """`newsclust status --home H` means `newsclust --home H status`: global options may follow the command."""
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            takes_value = GLOBAL_OPTIONS[name] and "=" not in arg
            front.extend(argv[i : i + (2 if takes_value else 1)])
            i += 2 if takes_value else 1
            continue
        if arg == "--":
            rest.extend(argv[i:])
            break
        rest.append(arg)
        i += 1
    return front + rest


def run_app(argv: list[str]) -> None:
    """Run the commands: a setting that cannot be used is one line and exit status 2, not a traceback."""
    from ..config import SettingsError
    from ..faults import BrokenStore

    try:
        app(args=hoist_global_options(argv), prog_name="newsclust")
    except SettingsError as exc:
        typer.echo(f"newsclust: {exc}", err=True)
        sys.exit(2)
    except BrokenStore as exc:  # a damaged database or vector store, a home we cannot write: one line, nothing changed
        typer.echo(f"newsclust: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 — our environment failing is a message and a retry, not a traceback
        from ..faults import transient_cause

        cause = transient_cause(exc)
        if cause is None:
            raise
        typer.echo(f"newsclust: {cause}; nothing was changed, try again shortly", err=True)
        sys.exit(75)  # EX_TEMPFAIL
