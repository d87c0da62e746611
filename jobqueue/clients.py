"""What the predecessor's Windows clients write, read as they meant it.

Their batch client writes a job file with ``echo`` lines redirected to the share (brief §7):

    {
      "job_id": "job_12345_20261201_140503",
      "input_file": "desk.csv",
      "portfolio_size": 35,
      "job_type": "complete_optimization",
      "timestamp": "Tue 12/01/2026 14:05:03.12",
      "client_info": {"computer_name": "DESK-07", "username": "José", "drive_letter": "Z:"},
      "execution_mode": "server_side_heavydb",
      "input_format": "csv_only"
    }

``echo`` escapes nothing and encodes in the console's code page, so such a file can hold a
Windows path with bare backslashes (``"Z:\\input\\desk.csv"`` written as one backslash each, which
JSON refuses, or reads as a form feed in ``\\f``), an empty value where a variable was unset
(``"portfolio_size": ,``), and a name in cp1252/cp850 bytes rather than UTF-8. PowerShell's
``Out-File`` writes UTF-16 with a byte-order mark. Each is read here as the client meant it;
anything still unreadable is refused with the reason (see :func:`jobqueue.checks.parse_job_file`).
"""

from __future__ import annotations

import json
import re
from typing import Any

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_EMPTY_VALUE = re.compile(r":(\s*)(?=[,}\]])")
_CONTROL = re.compile(r"[\x00-\x1f]")
_SIZE_IN_NAME = re.compile(r"_ps(\d{1,3})$", re.I)
NAME_SIZES = (10, 100)  # a `_ps<N>` name suffix means size N in the predecessor's range only


def decode_text(raw: bytes) -> str:
    """A job file's text: by its byte-order mark, else UTF-8, else the Windows ANSI code page."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw.decode(encoding)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _has_control(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_CONTROL.search(value))
    if isinstance(value, dict):
        return any(_has_control(k) or _has_control(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_control(v) for v in value)
    return False


def _as_echo_meant(text: str) -> str:
    """``text`` with every backslash inside a string literal, and every missing value, as ``echo`` meant them."""
    out, at = [], 0
    for match in _STRING.finditer(text):
        out.append(_EMPTY_VALUE.sub(r":\1null", text[at : match.start()]))
        body = match.group()[1:-1].replace("\\", "\\\\")
        out.append(f'"{body}"')
        at = match.end()
    out.append(_EMPTY_VALUE.sub(r":\1null", text[at:]))
    return "".join(out)


def load_job_json(text: str) -> Any:
    """The JSON of a job file; a file written by ``echo`` is read as its writer meant it.

    Strict JSON is tried first. When it fails, or succeeds only by turning a Windows path's
    ``\\t``, ``\\n`` or ``\\f`` into control characters, every backslash is read as itself and an
    empty value as null. Raises ``ValueError`` (strict JSON's own message) when neither reading works.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        strict_error: ValueError | None = exc
    else:
        if not _has_control(value):
            return value
        strict_error = None
    try:
        return json.loads(_as_echo_meant(text))
    except ValueError:
        if strict_error is not None:
            raise strict_error from None
        return value


def input_name(value: str) -> str | None:
    """The plain file name a client's ``input_file`` means in the share's ``input/``, or None.

    ``desk.csv``, ``input/desk.csv``, ``Z:\\input\\desk.csv`` and ``\\\\server\\share\\input\\desk.csv``
    all mean ``desk.csv``; a path elsewhere (``C:\\Users\\…``), ``..`` or an empty name means nothing here.
    """
    parts = [p for p in re.split(r"[\\/]+", value.strip()) if p]
    if not parts:
        return None
    name = parts[-1]
    if len(parts) > 1 and parts[-2].lower() != "input":
        return None
    if name in (".", "..") or ":" in name:
        return None
    return name


def size_in_name(stem: str) -> int | None:
    """The size a ``_ps<N>`` suffix names (``desk_ps50`` → 50), for N in :data:`NAME_SIZES`; else None."""
    match = _SIZE_IN_NAME.search(stem)
    if match is None:
        return None
    size = int(match.group(1))
    return size if NAME_SIZES[0] <= size <= NAME_SIZES[1] else None
