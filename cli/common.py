"""What every ``heavyopt`` command shares: the Typer app, the consoles, common options, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from errors import HeavyOptError
from optimizer.config import Config, load_config

app = typer.Typer(
    name="heavyopt",
    help="Heavy Optimizer: pick the best portfolio of option strategies from a P&L CSV.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
OUTPUT_ERRORS_EXIT = 6  # the job completed but some output files could not be written
WAIT_TIMEOUT_EXIT = 7  # submit --wait: no result in time
out = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="INI file (config_zone.ini keys).", dir_okay=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a key: SECTION.key=value (repeatable), e.g. PORTFOLIO.max_size=40."),
]


def fail(exc: HeavyOptError) -> typer.Exit:
    err.print(f"heavyopt: {exc}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def config_from(config_file: Path | None, sets: list[str] | None, extra: list[str]) -> Config:
    return load_config([config_file] if config_file else [], overrides=[*(sets or []), *extra])


def print_validation(summary: dict[str, Any] | None) -> None:
    """One line from a job's validation summary: the headline and verdict, or why it was not validated."""
    if not summary:
        return
    if summary.get("method", "none") != "none":
        line = f"validation: {summary['headline']} Verdict: {summary['verdict']}."
    else:
        why = summary.get("note") or "VALIDATION.method = none"
        line = f"validation: not validated ({why}); every figure is in sample"
    out.print(line, highlight=False, soft_wrap=True)
