"""Hostile input (issue #16): whatever the bytes, ``load_csv`` returns a Dataset or raises a one-line
``InputError``; a file too big, a header line too long or too wide is refused before it is read whole."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from errors import InputError
from optimizer.loader import MAX_COLUMNS, MAX_HEADER_BYTES, MAX_INPUT_MB, METADATA_COLUMNS, load_csv

# Deterministic (CI runs the same examples every time) and sized so this file takes well under a
# minute on two cores; the deadline turns a hang or a quadratic blow-up into a failure.
FUZZ = settings(max_examples=1000, deadline=timedelta(seconds=2), derandomize=True, database=None)

MAX_MESSAGE_CHARS = 1000  # "one short line": a message quotes cells and names cut to 100 characters


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file the examples overwrite (module scope: Hypothesis reruns a test body, not its fixtures)."""
    return tmp_path_factory.mktemp("fuzz") / "fuzzed.csv"


def load_or_refuse(path: Path, data: bytes) -> None:
    """Load ``data`` from ``path``: any exception but a one-line InputError naming the file fails the test."""
    path.write_bytes(data)
    try:
        load_csv(path)
    except InputError as exc:
        message = str(exc)
        assert message.startswith(f"input error: {path.name}"), message
        assert "\n" not in message and "\r" not in message, message
        assert len(message) < MAX_MESSAGE_CHARS, message


# --- fuzzing: arbitrary and near-valid files ---------------------------------------------------

CSV_CHARS = st.sampled_from(list('Date,;"\n\r \t0123456789-+.eEinfa\x00\ufeffé€'))
NUMBER_LIKE = ("", " ", "1", "-1.5", "1e400", "-1e400", "1e-400", "-", "+", ".", "nan", "NaN", "inf", "-inf")
ODD_CELLS = ("infinity", "0x10", "1_0", "1,5", "\x00", "1\x00", "１", "٣", '"', '""', '"1"', '"a\nb"', '"1\r\n2"')
CELLS = st.one_of(
    st.sampled_from([*NUMBER_LIKE, *ODD_CELLS, "9" * 400]),
    st.floats().map(repr),
    st.text(CSV_CHARS, max_size=8),
)
DATE_LIKE = ("2023-01-02", "2023-01-03", "02-01-2023", "13-01-2023", "01-13-2023", "２０２３-01-02", "٢٠٢٣-01-02")
ODD_DATES = ("0000-01-01", "9999-12-31", "2023-1-2 00:00", "", "x", "00-00-0000", "2023-13-45", "2023-02-30")
DATES = st.one_of(
    st.sampled_from([*DATE_LIKE, *ODD_DATES]),
    st.dates().map(date.isoformat),
    st.text(CSV_CHARS, max_size=12),
)
NAMES = st.one_of(
    st.sampled_from(["date", "DATE", "Zone", "zone", "Day", "capital", "", " ", "A", "A", '"A,B"', '"x\ny"', "\x00"]),
    st.text(CSV_CHARS, max_size=6),
)
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])


FINITE = st.floats(allow_nan=False, allow_infinity=False).map(repr)


def mostly(usual: st.SearchStrategy[str], hostile: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``usual`` seven times in eight: hostile parts reach every check, yet many files get past the header."""
    return st.integers(0, 7).flatmap(lambda i: hostile if i == 0 else usual)


@st.composite
def near_valid_csv(draw: st.DrawFn) -> bytes:
    """A valid file's shape (a header with a Date column, one row a day) with hostile parts, in any dialect."""
    names = draw(st.lists(mostly(st.sampled_from("ABCDEF"), NAMES), min_size=1, max_size=5, unique=True))
    date_at = draw(st.integers(0, len(names)))
    names.insert(date_at, draw(mostly(st.just("Date"), st.sampled_from(['"Date"', " date ", "DATE", "Dates"]))))
    first_day = draw(st.dates(date(2000, 1, 1), date(2030, 1, 1)))
    rows = [names]
    for i in range(draw(st.sampled_from([2, 3, 4, 6, 0, 1]))):
        width = draw(st.sampled_from([len(names) - 1] * 14 + [max(0, len(names) - 2), len(names)]))
        row = draw(st.lists(mostly(FINITE, CELLS), min_size=width, max_size=width))
        row.insert(min(date_at, width), draw(mostly(st.just((first_day + timedelta(days=i)).isoformat()), DATES)))
        rows.append(row)
        rows += draw(st.sampled_from([[]] * 6 + [[[]], [[" "]]]))  # now and then a blank line
    delimiter = draw(mostly(st.just(","), st.sampled_from([";", "\t", ", "])))
    ends = draw(st.lists(mostly(st.just("\n"), LINE_ENDS), min_size=len(rows), max_size=len(rows)))
    text = "".join(delimiter.join(row) + end for row, end in zip(rows, ends, strict=True))
    encoded = text.encode(draw(st.sampled_from(["utf-8", "cp1252"])), errors="replace")
    return draw(st.sampled_from([b""] * 6 + [b"\xef\xbb\xbf", b"\xff\xfe", b"PK\x03\x04"])) + encoded


@FUZZ
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_load_or_raise_one_line_input_error(fuzz_file: Path, data: bytes) -> None:
    load_or_refuse(fuzz_file, data)


@FUZZ
@given(text=st.text(CSV_CHARS, max_size=400))
def test_csv_like_text_loads_or_raises_one_line_input_error(fuzz_file: Path, text: str) -> None:
    load_or_refuse(fuzz_file, text.encode("utf-8"))


@FUZZ
@given(data=near_valid_csv())
def test_near_valid_csv_loads_or_raises_one_line_input_error(fuzz_file: Path, data: bytes) -> None:
    load_or_refuse(fuzz_file, data)


# --- fuzzing: a valid file in any dialect loads, with every value ------------------------------

# No ',' or ';' in names: the delimiter is the more frequent of the two in the header. 'é' alone: its
# cp1252 byte never makes valid UTF-8 with ASCII around it, so the encoding is never misread.
STRATEGY_NAMES = st.lists(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_ é]{0,11}", fullmatch=True).map(str.strip), min_size=1, max_size=5, unique=True
).filter(lambda names: not {n.lower() for n in names} & {m.lower() for m in METADATA_COLUMNS})
VALUES = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.none())  # None: a blank cell


@st.composite
def valid_csv(draw: st.DrawFn) -> tuple[bytes, list[str], list[date], np.ndarray]:
    names = draw(STRATEGY_NAMES)
    days = draw(st.lists(st.dates(date(1990, 1, 1), date(2090, 1, 1)), min_size=2, max_size=6, unique=True))
    values = [draw(st.lists(VALUES, min_size=len(names), max_size=len(names))) for _ in days]
    delimiter = draw(st.sampled_from([",", ";"]))
    quote_all = draw(st.booleans())

    def cell(text: str) -> str:
        return f'"{text}"' if quote_all else text

    lines = [delimiter.join(["Date", *(cell(n) for n in names)])]
    lines += [
        delimiter.join([d.isoformat(), *(cell("" if v is None else repr(v)) for v in row)])
        for d, row in zip(days, values, strict=True)
    ]
    ends = draw(st.lists(LINE_ENDS, min_size=len(lines), max_size=len(lines)))  # mixed, as after copy and paste
    ends[-1] = draw(st.sampled_from(["", ends[-1]]))
    text = "".join(line + end for line, end in zip(lines, ends, strict=True))
    prefix = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    pnl = np.array([[np.nan if v is None else v for v in row] for row in values])  # NaN: blank, loaded as 0
    return prefix + text.encode(draw(st.sampled_from(["utf-8", "cp1252"]))), names, days, pnl


@FUZZ
@given(case=valid_csv())
def test_valid_csv_in_any_dialect_loads_every_value(
    fuzz_file: Path, case: tuple[bytes, list[str], list[date], np.ndarray]
) -> None:
    data, names, days, pnl = case
    fuzz_file.write_bytes(data)
    loaded = load_csv(fuzz_file)
    assert loaded.strategies == tuple(names)
    assert loaded.dates.tolist() == days
    np.testing.assert_array_equal(loaded.pnl, np.nan_to_num(pnl, nan=0.0))
    assert loaded.blank_cells == int(np.isnan(pnl).sum())


# --- the crashes fuzzing found, one example each ----------------------------------------------

BROKEN: list[tuple[str, bytes, list[str]]] = [
    # (id, file bytes, fragments the message must contain)
    (
        "quoted-field-over-csv-limit",  # was _csv.Error: field larger than field limit (131072)
        b'Date,"' + b"A" * 200_000 + b'"\n2023-01-02,1\n2023-01-03,2\n',
        ["row 1", "131,072 characters", "double quote"],
    ),
    (
        "unclosed-quote",  # was read as one field to the end of the file: "0 trading day(s)"
        b'Date,A\n2023-01-02,1\n2023-01-03,"2\n2023-01-04,3\n',
        ["row 3", "malformed quoting", "double quote"],
    ),
    ("utf-16", "Date,A\n2023-01-02,1\n2023-01-03,2\n".encode("utf-16"), ["UTF-16", "CSV UTF-8"]),
    ("xlsx", b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), ["zip", "CSV UTF-8"]),
    (
        "long-cell-shortened",  # was quoted whole: a message of the cell's size
        b"Date,A\n2023-01-02,1\n2023-01-03," + b"x" * 100_000 + b"\n",
        ["row 3", "'A'", "... (100,000 characters) is not a number"],
    ),
    (
        "row-too-wide",  # split into a list before its width was checked
        b"Date,A\n2023-01-02,1\n2023-01-03," + b"," * MAX_COLUMNS + b"\n",
        ["row 3", f"over {MAX_COLUMNS:,} fields"],
    ),
    (
        "quoted-row-too-wide",
        b'Date,"A"\n2023-01-02,1\n2023-01-03,' + b"," * MAX_COLUMNS + b"\n",
        ["row 3", f"over {MAX_COLUMNS:,} fields"],
    ),
    (
        "record-too-wide-across-lines",  # quoted line breaks: no one line is too wide, the record is
        b'Date,"A"\n2023-01-02,1\n2023-01-03,"x\n' + (b'y"' + b"," * (MAX_COLUMNS // 2) + b'"x\n') * 3 + b'y"\n',
        ["row 3", f"over {MAX_COLUMNS:,} fields"],
    ),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("data", "fragments"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_hostile_file_is_one_line_input_error(tmp_path: Path, data: bytes, fragments: list[str]) -> None:
    path = tmp_path / "hostile.csv"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        load_csv(path)
    message = str(info.value)
    assert message.startswith("input error: hostile.csv")
    assert "\n" not in message and len(message) < MAX_MESSAGE_CHARS
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("line_end", ["\r", "\r\n"])
def test_old_mac_and_windows_line_ends_load_like_unix(tmp_path: Path, line_end: str) -> None:
    """A CR-only file split as one line and was refused with '0 trading day(s)' unless it had a quote."""
    text = "Date,A,B\n2023-01-02,1,2\n2023-01-03,3,\n"
    unix = load_csv(_write(tmp_path / "unix.csv", text.encode()))
    other = load_csv(_write(tmp_path / "other.csv", text.replace("\n", line_end).encode()))
    assert other.strategies == unix.strategies == ("A", "B")
    np.testing.assert_array_equal(other.pnl, unix.pnl)
    np.testing.assert_array_equal(other.dates, unix.dates)


def test_utf8_bom_on_a_cp1252_file_is_not_part_of_the_date_column_name(tmp_path: Path) -> None:
    """Decoded as cp1252 the BOM became 'ï»¿Date': 'no Date column'."""
    data = b"\xef\xbb\xbfDate,Straddle_\xe9\n2023-01-02,1\n2023-01-03,2\n"
    assert load_csv(_write(tmp_path / "bom.csv", data)).strategies == ("Straddle_é",)


@pytest.mark.parametrize(
    ("where", "fragment"),
    [("inside-a-file", "Not a directory"), ("name-too-long", "File name too long"), ("nul", "null byte")],
)
def test_unreadable_path_is_an_input_error(tmp_path: Path, where: str, fragment: str) -> None:
    """Each was an OSError or ValueError, not an InputError."""
    paths = {
        "inside-a-file": _write(tmp_path / "a.csv", b"Date,A\n") / "b.csv",
        "name-too-long": tmp_path / ("x" * 300 + ".csv"),
        "nul": tmp_path / "a\x00.csv",
    }
    with pytest.raises(InputError, match=fragment) as info:
        load_csv(paths[where])
    assert "\n" not in str(info.value)


def test_file_name_with_a_line_break_keeps_the_message_on_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_csv(_write(tmp_path / "a\nb.csv", b"Date,A\n2023-01-02,1\n"))
    assert str(info.value).startswith("input error: 'a\\nb.csv'")


@pytest.mark.timeout(30)
def test_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Reading a FIFO blocked until a writer came, and /dev/zero never ends."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(InputError, match="not a regular file"):
            load_csv(path)


# --- limits, checked before the file is read whole ---------------------------------------------

HEADER_AND_ROWS = b"Date,A,B\n2023-01-02,1,2\n2023-01-03,3,4\n"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _sparse(path: Path, size_bytes: int) -> Path:
    """A valid header and rows, then zeros to ``size_bytes`` as a hole: no disk is used."""
    with path.open("wb") as fh:
        fh.write(HEADER_AND_ROWS)
        fh.truncate(size_bytes)
    return path


@contextmanager
def peak_allocation() -> Iterator[Callable[[], int]]:
    """Bytes allocated at the peak inside the block (Python and NumPy allocations), for after it."""
    tracemalloc.start()
    peak = 0
    try:
        yield lambda: peak
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


@pytest.mark.timeout(30)
def test_1_gb_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "big.csv", 1 << 30)
    assert MAX_INPUT_MB * 1e6 > 1 << 30  # the default admits 1 GB: this test sets a smaller limit
    with peak_allocation() as peak, pytest.raises(InputError) as info:
        load_csv(path, max_input_mb=512)
    assert "1,073.7 MB is over the loader's limit of 512 MB" in str(info.value)
    assert peak() < 1_000_000


@pytest.mark.timeout(30)
def test_file_over_the_default_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "huge.csv", int((MAX_INPUT_MB + 100) * 1e6))
    with peak_allocation() as peak, pytest.raises(InputError) as info:
        load_csv(path)
    assert f"over the loader's limit of {MAX_INPUT_MB:,g} MB" in str(info.value)
    assert "split the file" in str(info.value)
    assert peak() < 1_000_000


def test_file_at_the_limit_loads(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.csv", HEADER_AND_ROWS)
    limit_mb = len(HEADER_AND_ROWS) / 1e6
    assert load_csv(path, max_input_mb=limit_mb).n_rows == 2
    with pytest.raises(InputError, match="over the loader's limit"):
        load_csv(path, max_input_mb=limit_mb * 0.99)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("rest", [b"\n2023-01-02,1\n2023-01-03,2\n", b""], ids=["then-rows", "no-line-break"])
def test_10_mb_header_line_is_refused_after_reading_only_the_limit(tmp_path: Path, rest: bytes) -> None:
    path = _write(tmp_path / "long.csv", b"Date,A" + b"x" * 10_000_000 + rest)
    with peak_allocation() as peak, pytest.raises(InputError) as info:
        load_csv(path)
    assert "row 1: the header line is over the loader's limit of 4 MB" in str(info.value)
    assert peak() < MAX_HEADER_BYTES + 1_000_000  # the first 4 MB, not the 10 MB


@pytest.mark.timeout(30)
def test_million_column_header_is_refused_before_the_rows_are_read(tmp_path: Path) -> None:
    columns = 1_000_000
    header = b"Date" + b",S" * (columns - 1)  # 2 MB: under the header limit; names need not be unique yet
    rows = b"".join(b"\n2023-01-%02d" % day + b",1" * (columns - 1) for day in (2, 3, 4))
    path = _write(tmp_path / "wide.csv", header + rows)
    with peak_allocation() as peak, pytest.raises(InputError) as info:
        load_csv(path)
    assert f"row 1: 1,000,000 columns, over the loader's limit of {MAX_COLUMNS:,}" in str(info.value)
    assert peak() < MAX_HEADER_BYTES + 1_000_000 < path.stat().st_size
