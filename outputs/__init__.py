"""Output files of a run, each written by one function of the frozen :class:`RunReport`."""

from outputs.report import RunReport
from outputs.writers import WRITERS, write_run_folder

__all__ = ["WRITERS", "RunReport", "write_run_folder"]
