"""The CSV file as text: its bytes read within the limits, decoded, split into records.

Hostile input is refused here with an :class:`InputError` before it costs memory or time:
the file's size, its header line's length and its column count are checked before the file
is read whole, and a row's field count before it is split. :mod:`optimizer.loader` turns the
records into a :class:`~optimizer.loader.Dataset`.
"""

from __future__ import annotations

import csv
import stat
from collections.abc import Iterator
from pathlib import Path

from errors import InputError

# Limits on a file, each checked before the rest of the file is read (see read_bytes).
MAX_INPUT_MB = 2048.0  # QUEUE.max_input_mb's default: what the queue accepts, the loader reads


# The production header (25,546 names of ~14 characters) is 0.4 MB; names of 60 characters
# would make 1.6 MB. 4 MB leaves 2.5x room over that and refuses a file with no line breaks early.
MAX_HEADER_BYTES = 4_000_000


# 8x the production width; a row of that many float64 values is 1.6 MB.
MAX_COLUMNS = 200_000


_SHOWN_CHARS = 100  # a cell or name quoted in a message is cut here (a message stays one short line)


_UTF8_BOM = b"\xef\xbb\xbf"


def shown(text: str) -> str:
    """``text`` quoted for a message: one line (control characters escaped), cut after a few words."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text):,} characters)"


def _file(name: str) -> str:
    """A file as a message names it: as it is, unless a line break or another control character needs quoting."""
    return name if name.isprintable() else repr(name)


def fail(path: Path, where: str, what: str) -> InputError:
    return InputError(f"input error: {_file(path.name)}{', ' + where if where else ''}: {what}")


def read_bytes(path: Path, max_input_mb: float) -> bytes:
    """The file's bytes, once what can be checked without reading it whole has been (size, header line)."""
    try:
        return _read_checked(path, max_input_mb)
    except FileNotFoundError:
        raise InputError(f"input error: {_file(str(path))}: file not found") from None
    except PermissionError:
        raise InputError(
            f"input error: {_file(str(path))}: permission denied; check the file's owner and mode"
        ) from None
    except (OSError, ValueError) as exc:  # a name too long, a file where a folder should be, a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"input error: {_file(str(path))}: cannot be read ({reason}); check the path") from None


def _read_checked(path: Path, max_input_mb: float) -> bytes:
    """:func:`read_bytes` without its translation of the operating system's errors."""
    info = path.stat()
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"input error: {_file(str(path))}: is a directory, expected a CSV file")
    if not stat.S_ISREG(info.st_mode):  # a pipe or a device may never end
        raise fail(path, "", "not a regular file (a pipe, socket or device); save the data as a CSV file")
    if info.st_size > max_input_mb * 1e6:
        raise fail(
            path,
            "",
            f"{info.st_size / 1e6:,.1f} MB is over the loader's limit of {max_input_mb:,g} MB; "
            "split the file by date range, or check that it is the P&L CSV",
        )
    with path.open("rb") as fh:
        _check_head(path, fh.read(min(info.st_size, MAX_HEADER_BYTES) + 1))
        fh.seek(0)
        raw = fh.read(info.st_size + 1)
    if len(raw) > info.st_size:
        raise fail(path, "", "the file grew while it was read; wait until it is fully written, then run again")
    if not raw or raw.isspace():
        raise fail(path, "", "the file is empty; expected a header row and one row per day")
    return raw


def _check_head(path: Path, head: bytes) -> None:
    """Refuse, from the first ``MAX_HEADER_BYTES`` + 1 bytes, a file that is not CSV text or whose header is too big."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise fail(
            path, "", "the file is UTF-16 text (Excel's 'Unicode Text'); save it as 'CSV UTF-8 (Comma delimited)'"
        )
    if head.startswith(b"PK\x03\x04"):
        raise fail(
            path,
            "",
            "the file is a zip archive (an Excel workbook?), not CSV; save it as 'CSV UTF-8 (Comma delimited)'",
        )
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    length = min(ends, default=len(head))  # of the header line, in bytes; measured and counted without a copy
    if length > MAX_HEADER_BYTES:
        raise fail(
            path,
            "row 1",
            f"the header line is over the loader's limit of {MAX_HEADER_BYTES / 1e6:g} MB; "
            "check that this is the P&L CSV, with a line break after the header",
        )
    columns = max(head.count(b",", 0, length), head.count(b";", 0, length)) + 1  # the delimiter is the more frequent
    if columns > MAX_COLUMNS:
        raise fail(
            path,
            "row 1",
            f"{columns:,} columns, over the loader's limit of {MAX_COLUMNS:,}; split the strategies over several files",
        )


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel's "CSV (Comma delimited)" writes the Windows ANSI code page.
        return raw.removeprefix(_UTF8_BOM).decode("cp1252", errors="replace")


def _lines(text: str, *, keepends: bool = False) -> Iterator[str]:
    """The lines of ``text`` one at a time, each ended by ``\\r\\n``, ``\\r`` (old Mac Excel) or ``\\n``.

    As ``io.StringIO(text, newline="")`` splits them (and ``str.split`` when ``keepends`` is
    false: an empty last line after a final line end), without a copy of ``text`` at four bytes
    a character or a list of every line.
    """
    size, start = len(text), 0
    cr = lf = -1  # the next \\r and \\n at or after ``start``; each searched for again only once passed
    while start < size:
        if cr < start:
            cr = _find(text, "\r", start)
        if lf < start:
            lf = _find(text, "\n", start)
        end = min(cr, lf)
        if end == size:
            break
        after = end + 2 if lf == cr + 1 else end + 1
        yield text[start : after if keepends else end]
        start = after
    if start < size or not keepends:
        yield text[start:]


def _find(text: str, char: str, start: int) -> int:
    """Where ``char`` is next at or after ``start``, or ``len(text)`` if nowhere."""
    at = text.find(char, start)
    return len(text) if at < 0 else at


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].split("\r", 1)[0]


def _too_wide(path: Path, row_no: int) -> InputError:
    return fail(path, f"row {row_no}", f"over {MAX_COLUMNS:,} fields, the loader's limit; check for stray delimiters")


def split_records(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, fields) of each line; a line is refused before it is split if it is too wide.

    A file without a quote character is split directly, which is 2–3× faster than the
    ``csv`` module at 25k columns; any quoting goes through the ``csv`` module.
    """
    if '"' not in text:
        for number, line in enumerate(_lines(text), start=1):
            if line.count(delimiter) >= MAX_COLUMNS:
                raise _too_wide(path, number)
            yield number, line.split(delimiter) if line.strip() else []
        return
    yield from _quoted_records(path, text, delimiter)


def _quoted_records(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """As :func:`records`, through the ``csv`` module; a record may span lines (a quoted line break)."""
    delimiters = 0  # in the lines of the record being read: bounds its fields before the csv module lists them

    def lines() -> Iterator[str]:
        nonlocal delimiters
        for line in _lines(text, keepends=True):
            delimiters += line.count(delimiter)
            if delimiters >= MAX_COLUMNS:
                raise _too_wide(path, first)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    first = 1  # the line the next record starts on
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise fail(path, f"row {first}", _quoting_problem(str(exc))) from None
        delimiters = 0
        yield reader.line_num, row
        first = reader.line_num + 1


def _quoting_problem(csv_error: str) -> str:
    """What a ``csv.Error`` means for our files, and what to do."""
    if "field larger than field limit" in csv_error:
        what = f"a field of over {csv.field_size_limit():,} characters"
    else:
        what = f"malformed quoting ({csv_error})"
    return f"{what}; check for a double quote without its closing one"


def delimiter(first_line: str) -> str:
    """``;`` when the header line has more semicolons than commas (a European Excel export), else ``,``."""
    return ";" if first_line.count(";") > first_line.count(",") else ","
