"""Read the strategy P&L CSV (brief §2) into a :class:`Dataset`.

The production file is 82 rows × 25,546 columns. Column-oriented readers (pandas,
pyarrow, DuckDB's ``read_csv``) pay per-column overhead and take seconds at that
width; the C ``csv`` module reading row by row plus one ``float`` conversion per row
takes well under a second (``heavyopt bench`` measures both). Rows are numbered as a
spreadsheet shows them: the header is row 1.

Hostile input is refused with an :class:`InputError`, never another exception: the file's
size, its header line's length and its column count are checked before the file is read
whole (``MAX_INPUT_MB``, ``MAX_HEADER_BYTES``, ``MAX_COLUMNS``; docs/architecture.md), in
:mod:`optimizer.csvtext`, which reads the file into records; this module makes them a dataset.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from optimizer.csvtext import (  # noqa: F401 - the limits are part of this module's interface too
    MAX_COLUMNS,
    MAX_HEADER_BYTES,
    MAX_INPUT_MB,
    decode,
    delimiter,
    fail,
    first_line,
    read_bytes,
    shown,
    split_records,
)

# Metadata columns, recognised by name case-insensitively, never by position.
METADATA_COLUMNS = (
    "Date",
    "Day",
    "Zone",
    "start_time",
    "end_time",
    "market_regime",
    "Regime_Confidence_%",
    "Market_regime_transition_threshold",
    "capital",
)
_METADATA_BY_LOWER = {name.lower(): name for name in METADATA_COLUMNS}

_FORMAT_ORDER = ("YYYY-MM-DD", "DD-MM-YYYY", "MM-DD-YYYY")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00)?)?$")
_XX_XX_YYYY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")


@dataclass(frozen=True)
class Dataset:
    """One input file, rows in file order.

    Attributes
    ----------
    pnl : float64 array, shape (rows, strategies). Finite; blank cells are 0.
    dates : datetime64[D] array, shape (rows,).
    zones : the ``Zone`` value of each row, or None without a Zone column.
    blank_columns : per row, the int64 indices of its blank cells (usually empty).
    metadata : canonical metadata column name -> its raw value per row.
    """

    source: str
    sha256: str
    strategies: tuple[str, ...]
    dates: np.ndarray
    zones: tuple[str, ...] | None
    pnl: np.ndarray
    blank_columns: tuple[np.ndarray, ...]
    date_format: str
    metadata: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def blanks_per_strategy(self) -> np.ndarray:
        """int64, shape (strategies,): blank cells per column."""
        columns = [c for c in self.blank_columns if c.size]
        flat = np.concatenate(columns) if columns else np.empty(0, dtype=np.int64)
        return np.bincount(flat, minlength=len(self.strategies)).astype(np.int64)

    @property
    def blank_cells(self) -> int:
        return int(sum(c.size for c in self.blank_columns))

    @property
    def n_rows(self) -> int:
        return int(self.pnl.shape[0])

    def daily(self) -> tuple[np.ndarray, np.ndarray]:
        """Entire-day view: zones of a date summed, dates ascending.

        Returns
        -------
        dates : datetime64[D] array, shape (days,)
        pnl : float64 array, shape (days, strategies)
        """
        return sum_by_date(self.dates, self.pnl)


def sum_by_date(dates: np.ndarray, pnl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the rows of each date (the zones of a day), dates ascending.

    Parameters
    ----------
    dates : datetime64[D], shape (rows,).
    pnl : float64, shape (rows, S).

    Returns
    -------
    unique dates, shape (days,); float64 sums, shape (days, S).
    """
    unique, inverse = np.unique(dates, return_inverse=True)
    if unique.shape[0] == dates.shape[0]:
        return unique, pnl[np.argsort(dates, kind="stable")]
    summed = np.zeros((unique.shape[0], pnl.shape[1]))
    np.add.at(summed, inverse, pnl)
    return unique, summed


def _header(path: Path, names: list[str]) -> tuple[list[str], int]:
    """Strip names; return them and how many trailing unnamed columns Excel left."""
    names = [n.strip() for n in names]
    trailing = 0
    while trailing < len(names) and names[len(names) - 1 - trailing] == "":
        trailing += 1
    names = names[: len(names) - trailing]
    seen: dict[str, int] = {}
    for pos, name in enumerate(names, start=1):
        if name == "":
            raise fail(path, f"row 1, column {pos}", "the column has no name; name it or delete the column")
        key = name.lower() if name.lower() in _METADATA_BY_LOWER else name
        if key in seen:
            raise fail(
                path,
                f"row 1, column {pos} {shown(name)}",
                f"duplicate column name (also column {seen[key]}); column names must be unique",
            )
        seen[key] = pos
    if "date" not in seen:
        raise fail(path, "row 1", "no 'Date' column; the first row must be a header with a Date column")
    return names, trailing


def _parse_cells(
    path: Path, row_no: int, cells: Sequence[str], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Strategy cells of one row -> (values, blank mask or None)."""
    try:
        values = np.array(cells, dtype=np.float64)
        blanks = None
    except ValueError:
        values = np.empty(len(cells), dtype=np.float64)
        blanks = np.zeros(len(cells), dtype=bool)
        for j, cell in enumerate(cells):
            text = cell.strip()
            if text == "":
                values[j], blanks[j] = 0.0, True
                continue
            try:
                values[j] = float(text)
            except ValueError:
                raise fail(
                    path,
                    f"row {row_no}, column {shown(names[j])}",
                    f"{shown(cell)} is not a number; fix the cell, or leave it blank for no trade (P&L 0)",
                ) from None
    finite = np.isfinite(values)
    if not finite.all():
        j = int(np.argmin(finite))
        raise fail(
            path,
            f"row {row_no}, column {shown(names[j])}",
            f"{shown(cells[j])} is not a finite number; P&L must be a finite amount (blank for no trade)",
        )
    return values, blanks


def _date_parser(path: Path, texts: Sequence[str], rows: Sequence[int], fmt: str) -> str:
    """Decide the date format of the file: configured, or from the data (refusing ambiguity)."""
    if fmt != "auto":
        return fmt
    iso = [i for i, t in enumerate(texts) if _ISO.match(t)]
    if len(iso) == len(texts):
        return "YYYY-MM-DD"
    other = [i for i, t in enumerate(texts) if _XX_XX_YYYY.match(t)]
    bad = next((i for i, t in enumerate(texts) if not _ISO.match(t) and not _XX_XX_YYYY.match(t)), None)
    if bad is not None:
        raise fail(
            path,
            f"row {rows[bad]}, column 'Date'",
            f"{shown(texts[bad])} is not a date; use YYYY-MM-DD or DD-MM-YYYY",
        )
    if iso and other:
        a, b = iso[0], other[0]
        raise fail(
            path,
            "column 'Date'",
            f"mixed date formats: row {rows[a]} has {shown(texts[a])}, row {rows[b]} has {shown(texts[b])}; "
            "use one format",
        )
    parts = [_XX_XX_YYYY.match(texts[i]).groups() for i in other]  # type: ignore[union-attr]
    first_over = next((i for i, p in enumerate(parts) if int(p[0]) > 12), None)
    second_over = next((i for i, p in enumerate(parts) if int(p[1]) > 12), None)
    if first_over is not None and second_over is not None:
        a, b = first_over, second_over
        raise fail(
            path,
            "column 'Date'",
            f"row {rows[a]} {shown(texts[a])} reads only as DD-MM-YYYY but row {rows[b]} {shown(texts[b])} only as "
            "MM-DD-YYYY; use one format",
        )
    if first_over is not None:
        return "DD-MM-YYYY"
    if second_over is not None:
        return "MM-DD-YYYY"
    raise fail(
        path,
        "column 'Date'",
        f"dates such as {shown(texts[0])} read as both DD-MM-YYYY and MM-DD-YYYY; "
        "set INPUT.date_format = DD-MM-YYYY (or MM-DD-YYYY), or write dates as YYYY-MM-DD",
    )


def _parse_dates(path: Path, texts: Sequence[str], rows: Sequence[int], fmt: str) -> np.ndarray:
    pattern = _ISO if fmt == "YYYY-MM-DD" else _XX_XX_YYYY
    out = np.empty(len(texts), dtype="datetime64[D]")
    for i, text in enumerate(texts):
        match = pattern.match(text)
        try:
            if match is None:
                raise ValueError
            a, b, c = (int(g) for g in match.groups())
            y, m, d = {"YYYY-MM-DD": (a, b, c), "DD-MM-YYYY": (c, b, a), "MM-DD-YYYY": (c, a, b)}[fmt]
            out[i] = np.datetime64(date(y, m, d))
        except ValueError:
            raise fail(path, f"row {rows[i]}, column 'Date'", f"{shown(text)} is not a valid {fmt} date") from None
    return out


def _check_unique_rows(
    path: Path, dates: np.ndarray, zones: Sequence[str] | None, rows: Sequence[int], texts: Sequence[str]
) -> None:
    seen: dict[tuple[object, str], int] = {}
    for i, day in enumerate(dates.tolist()):
        key = (day, zones[i].strip().lower() if zones is not None else "")
        if key in seen:
            what = f"date {shown(texts[i])}" + (f" and zone {shown(zones[i])}" if zones is not None else "")
            raise fail(
                path,
                f"row {rows[i]}",
                f"duplicate {what} (first at row {rows[seen[key]]}); each "
                + ("date and zone" if zones is not None else "date")
                + " must appear once",
            )
        seen[key] = i


@dataclass(frozen=True)
class _Columns:
    """What the header says: row width, metadata positions, strategy names and how to pick their cells."""

    width: int  # named columns
    trailing: int  # unnamed columns Excel left after them
    meta_pos: dict[str, int]  # canonical metadata name -> position
    strategies: tuple[str, ...]
    pick: Callable[[list[str]], Sequence[str]]  # a row's strategy cells, in the order of ``strategies``


def _columns(path: Path, names: list[str], trailing: int, min_strategies: int) -> _Columns:
    """Split the header into metadata and strategy columns; refuse too few strategies."""
    width = len(names)
    meta_pos = {_METADATA_BY_LOWER[n.lower()]: i for i, n in enumerate(names) if n.lower() in _METADATA_BY_LOWER}
    strat_pos = [i for i, n in enumerate(names) if n.lower() not in _METADATA_BY_LOWER]
    strategies = tuple(names[i] for i in strat_pos)
    if not strategies:
        raise fail(path, "row 1", "no strategy columns; every column other than Date and metadata is a strategy")
    if len(strategies) < min_strategies:
        raise fail(
            path,
            "row 1",
            f"{len(strategies)} strategy columns, fewer than the smallest portfolio size {min_strategies} "
            "(PORTFOLIO.min_size); add strategies or lower PORTFOLIO.min_size",
        )
    return _Columns(width, trailing, meta_pos, strategies, _picker(strat_pos, width))


def _picker(strat_pos: list[int], width: int) -> Callable[[list[str]], Sequence[str]]:
    """A row's cells at ``strat_pos``: one slice when they run to the last named column, else an itemgetter."""
    if strat_pos == list(range(strat_pos[0], width)):
        start = strat_pos[0]
        return operator.itemgetter(slice(start, width))
    getter = operator.itemgetter(*strat_pos)
    return (lambda row: (row[strat_pos[0]],)) if len(strat_pos) == 1 else getter


@dataclass
class _Rows:
    """The data rows read so far, in file order."""

    values: list[np.ndarray]
    blank_columns: list[np.ndarray]
    meta: dict[str, list[str]]  # canonical metadata name -> stripped text per row
    row_numbers: list[int]


def _check_fields(path: Path, row_no: int, row: list[str], columns: _Columns) -> None:
    """A row has a field per named column (plus, optionally, Excel's trailing ones, all blank)."""
    width = columns.width
    if len(row) != width + columns.trailing and len(row) != width:
        raise fail(path, f"row {row_no}", f"{len(row)} fields but the header has {width}; check for a stray comma")
    extra = next((i for i, c in enumerate(row[width:]) if c.strip()), None)
    if extra is not None:
        raise fail(path, f"row {row_no}, column {width + 1 + extra}", "a value under a column that has no name")


def _read_rows(path: Path, records: Iterator[tuple[int, list[str]]], columns: _Columns) -> _Rows:
    """Every data row after the header: strategy values, blank cells and metadata; blank lines skipped."""
    rows = _Rows([], [], {name: [] for name in columns.meta_pos}, [])
    no_blanks = np.empty(0, dtype=np.int64)
    for row_no, row in records:
        if not row or all(not c.strip() for c in row):
            continue  # blank line, or Excel's trailing ",,,," rows
        _check_fields(path, row_no, row, columns)
        cells = columns.pick(row)
        row_values, row_blanks = _parse_cells(path, row_no, cells, columns.strategies)
        rows.blank_columns.append(np.flatnonzero(row_blanks) if row_blanks is not None else no_blanks)
        rows.values.append(row_values)
        for name, pos in columns.meta_pos.items():
            rows.meta[name].append(row[pos].strip())
        rows.row_numbers.append(row_no)
    return rows


def _dates(path: Path, texts: Sequence[str], rows: Sequence[int], date_format: str) -> tuple[np.ndarray, str]:
    """The Date column: no blanks, one format (configured or decided), every date valid -> (dates, format)."""
    for i, t in enumerate(texts):
        if not t:
            raise fail(path, f"row {rows[i]}, column 'Date'", "the date is blank")
    fmt = _date_parser(path, texts, rows, date_format)
    return _parse_dates(path, texts, rows, fmt), fmt


def load_csv(
    path: str | Path, *, date_format: str = "auto", min_strategies: int = 1, max_input_mb: float = MAX_INPUT_MB
) -> Dataset:
    """Parse and validate one input file (brief §2).

    A file over ``max_input_mb`` (10^6 bytes), a header line over ``MAX_HEADER_BYTES`` or over
    ``MAX_COLUMNS`` columns is refused before the file is read whole.

    Raises
    ------
    InputError
        One line naming the file, the row and the column, and what to do.
    """
    if date_format not in ("auto", *_FORMAT_ORDER):
        raise ValueError(f"date_format must be 'auto' or one of {_FORMAT_ORDER}, not {date_format!r}")
    path = Path(path)
    raw = read_bytes(path, max_input_mb)
    sha256 = hashlib.sha256(raw).hexdigest()
    text = decode(raw)
    del raw  # not held beside its text: the file's size again
    records = split_records(path, text, delimiter(first_line(text)))
    names, trailing = _header(path, next(records, (1, []))[1])
    columns = _columns(path, names, trailing, min_strategies)
    rows = _read_rows(path, records, columns)

    meta, row_numbers = rows.meta, rows.row_numbers
    dates, fmt = _dates(path, meta["Date"], row_numbers, date_format)
    zones = tuple(meta["Zone"]) if "Zone" in meta else None
    _check_unique_rows(path, dates, zones, row_numbers, meta["Date"])
    if len(np.unique(dates)) < 2:
        raise fail(path, "", f"{len(np.unique(dates))} trading day(s); at least 2 days are needed")
    pnl = np.vstack(rows.values)
    pnl.setflags(write=False)
    return Dataset(
        source=str(path),
        sha256=sha256,
        strategies=columns.strategies,
        dates=dates,
        zones=zones,
        pnl=pnl,
        blank_columns=tuple(rows.blank_columns),
        date_format=fmt,
        metadata={k: tuple(v) for k, v in meta.items() if k != "Date"},
    )
