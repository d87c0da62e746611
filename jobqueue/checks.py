"""The checks a submission passes before it may run: pure functions over paths and values.

Each raises :class:`Rejected` with the reason the user reads; none touches the job database,
so each can be tried without a daemon. The daemon's side (moving files, recording rows) is in
:mod:`jobqueue.claims`.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

from errors import ConfigError, HeavyOptError
from jobqueue.clients import decode_text, input_name, load_job_json, size_in_name
from jobqueue.share import Share
from optimizer.config_sources import SERVER_SECTIONS, Layer, read_ini

JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
JOB_TYPES = {  # job_type → whether it is a zone job
    "": False,
    "complete_optimization": False,  # the predecessor's Windows client
    "comprehensive_optimization": False,
    "custom_optimization": False,
    "hft_optimization": False,
    "optimization": False,
    "portfolio": False,
    "portfolio_optimization": False,
    "standard": False,
    "zone": True,
    "zone_optimization": True,
    "zones": True,
}
JOB_FILE_LIMIT = 1_000_000  # bytes of a job file
INPUT_FORMATS = ("", "csv", "csv_only")  # the predecessor's clients send "csv_only"


class Rejected(HeavyOptError):
    """A submission that cannot run; the message is the reason the user reads."""


def merge_layers(server_layers: list[Layer], job_layers: list[Layer]) -> list[Layer]:
    """Server files < the job's sidecar and job file < environment < ``--set``."""
    return [*server_layers[:-2], *job_layers, *server_layers[-2:]]


def job_layer(path: Path, name: str) -> Layer:
    """A sidecar INI, its keys credited to ``name`` (as the user knows the file).

    A job's own settings may not reach the server's: the database, compute resources, output or the queue.
    """
    try:
        layer = read_ini(path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(str(path), name)) from None
    layer = {s: {k: (v, name) for k, (v, _) in keys.items()} for s, keys in layer.items()}
    for section in layer:
        if section in SERVER_SECTIONS:
            raise Rejected(f"{name}: section [{section}] is set by the server, not by a job; remove it from the file")
    return layer


def find_sidecar(csv: Path) -> Path | None:
    """``<stem>.ini`` (or ``.INI``) beside a CSV, if there is one (a link counts: it is rejected later)."""
    for name in (csv.stem + ".ini", csv.stem + ".INI"):
        candidate = csv.with_name(name)
        if os.path.lexists(candidate):
            return candidate
    return None


def sidecar_layers(sidecar: Path | None) -> list[Layer]:
    """The sidecar's layer (none without one); a sidecar that is not a regular file is rejected."""
    if sidecar is None:
        return []
    regular(sidecar, f"input/{sidecar.name}", "copy the settings file itself")
    return [job_layer(sidecar, f"input/{sidecar.name}")]


def portfolio_range(name: str, value: Any) -> tuple[int, int]:
    """``portfolio_size``: ``50``, ``"35-100"`` or ``[35, 100]``."""
    try:
        if isinstance(value, list) and len(value) == 2:
            low, high = int(value[0]), int(value[1])
        elif isinstance(value, str) and "-" in value.strip("- "):
            a, b = value.split("-", 1)
            low, high = int(a), int(b)
        elif isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        else:
            low = high = int(value)
    except (TypeError, ValueError, OverflowError):
        raise Rejected(f'{name}: portfolio_size {value!r}: use a number (50), a range "35-100" or [35, 100]') from None
    if not 2 <= low <= high:
        raise Rejected(f"{name}: portfolio_size {value!r}: sizes must be ≥ 2, smallest first")
    return low, high


def regular(path: Path, name: str, what_to_do: str) -> os.stat_result:
    """``path``'s status if it is a regular file; a link, folder, FIFO … is rejected, never followed."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise Rejected(f"{name} is a symbolic link; {what_to_do}")
    if not stat.S_ISREG(st.st_mode):
        raise Rejected(f"{name} is not a regular file; {what_to_do}")
    return st


def read_regular(path: Path, name: str, what_to_do: str, *, limit: int) -> bytes:
    """The bytes of a regular file, opened without following a link or blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Rejected(f"{name} is a symbolic link; {what_to_do}") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Rejected(f"{name} is not a regular file; {what_to_do}")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise Rejected(f"{name}: more than {limit:,} bytes is too large for a job file")
    return data


def peek_input_file(path: Path) -> str | None:
    """The ``input_file`` a job file names (as a plain name in input/), if it can be read; else None."""
    try:
        if path.suffix.lower() != ".json":
            return None
        request = load_job_json(decode_text(read_regular(path, path.name, "", limit=JOB_FILE_LIMIT)))
    except (Rejected, OSError, ValueError, RecursionError):
        return None
    value = request.get("input_file") if isinstance(request, dict) else None
    return input_name(value) if isinstance(value, str) else None


def parse_job_file(name: str, job_id: str, raw: bytes) -> Any:
    """A job file's JSON, once its name is a valid job id (any JSON value: :func:`check_request` checks it)."""
    if not JOB_ID.fullmatch(job_id):
        raise Rejected(f"{name}: job id {job_id!r}: use 1–100 letters, digits, '_' or '-' in the file name")
    try:
        return load_job_json(decode_text(raw))
    except (ValueError, RecursionError) as exc:
        raise Rejected(f"{name}: not valid JSON ({exc}); write a JSON object with job_id and input_file") from None


def check_request(name: str, job_id: str, request: Any) -> str:
    """The ``input_file`` of a job file's request: a JSON object whose ``job_id`` (if any) is its file name's."""
    if not isinstance(request, dict):
        raise Rejected(f"{name}: expected a JSON object with job_id and input_file, got {type(request).__name__}")
    if str(request.get("job_id", job_id)) != job_id:
        raise Rejected(
            f"{name}: job_id {request.get('job_id')!r} differs from the file name {job_id!r}; make them equal"
        )
    input_file = request.get("input_file")
    if not isinstance(input_file, str) or not input_file.strip():
        raise Rejected(f"{name}: input_file is missing; give the name of a CSV in input/")
    return input_file


def request_layer(name: str, request: dict[str, Any]) -> Layer:
    """The keys a job file's fields set (``portfolio_size``, ``job_type``), credited to the job file.

    The predecessor's other fields are read and kept with the job (``timestamp``, ``client_info``,
    ``execution_mode``: the server decides how a job runs); ``input_format`` must mean a CSV.
    """
    layer: Layer = {}
    size = request.get("portfolio_size")
    if size not in (None, ""):
        low, high = portfolio_range(name, size)
        layer["PORTFOLIO"] = {
            "min_size": (str(low), f"{name} portfolio_size"),
            "max_size": (str(high), f"{name} portfolio_size"),
        }
    job_type = str(request.get("job_type") or "").strip().lower()
    if job_type not in JOB_TYPES:
        raise Rejected(
            f"{name}: job_type {request.get('job_type')!r} is not known; use one of "
            "'portfolio_optimization', 'complete_optimization', 'zone_optimization' or leave it out"
        )
    if JOB_TYPES[job_type]:
        layer["OPTIMIZATION"] = {"zone_optimization_enabled": ("true", f"{name} job_type")}
    input_format = str(request.get("input_format") or "").strip().lower()
    if input_format not in INPUT_FORMATS:
        raise Rejected(
            f"{name}: input_format {request.get('input_format')!r}: only CSV files are read "
            '(input_format "csv_only", or leave it out); save the data as CSV and submit it again'
        )
    return layer


def name_layer(input_name: str) -> list[Layer]:
    """A ``_ps<N>`` suffix in the input's name (``desk_ps50.csv``) sets size N, as the predecessor read it.

    Below a sidecar INI and a job file's ``portfolio_size``, which say it explicitly.
    """
    size = size_in_name(Path(input_name).stem)
    if size is None:
        return []
    source = f"input/{input_name} (name ends in _ps{size})"
    return [{"PORTFOLIO": {"min_size": (str(size), source), "max_size": (str(size), source)}}]


def resolve_input(input_dir: Path, name: str, input_file: str) -> Path:
    """``input_file`` as a file directly inside ``input_dir``: no folders, no ``..``, no path off the share.

    A Windows client's ``Z:\\input\\desk.csv`` (or a UNC path ending in ``input\\desk.csv``) names
    ``desk.csv`` in input/; it is looked up by that name alone.
    """
    plain = input_name(input_file)
    if plain is None:
        raise Rejected(
            f"{name}: input_file {input_file!r} must be the name of a file in input/ on the share "
            "(a plain name, input\\<name>, or <drive>:\\input\\<name>; no other folders or '..')"
        )
    path = input_dir / plain
    if not os.path.lexists(path):
        raise Rejected(f"{name}: input_file {input_file!r} is not in input/; copy it there first")
    return path


def check_input(path: Path, share: Share, max_input_mb: float) -> None:
    """The input CSV is a regular, non-empty file of at most ``max_input_mb`` (a link is never followed)."""
    name = f"input/{path.name}"
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        where = "inside" if share.contains(path) else "outside"
        raise Rejected(f"{name} is a symbolic link (to a file {where} the share); copy the file itself")
    if not stat.S_ISREG(st.st_mode):
        raise Rejected(f"{name} is not a regular file")
    limit = max_input_mb * 1e6
    if st.st_size > limit:
        raise Rejected(
            f"{name}: {st.st_size / 1e6:,.1f} MB is over the limit of {max_input_mb:g} MB "
            "(QUEUE.max_input_mb); split the file or ask the operator to raise the limit"
        )
    if st.st_size == 0:
        raise Rejected(f"{name} is empty")
