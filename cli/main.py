"""The ``heavyopt`` command: the top layer, composing every other (docs/architecture.md).

The commands live in :mod:`cli.jobs` (run the optimiser here) and :mod:`cli.queue` (the daemon,
the API, submitting and following jobs); importing them registers them on :data:`app`.
"""

from __future__ import annotations

from cli import jobs, queue  # noqa: F401 - registers the commands
from cli.common import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console-script entry for python -m
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
