"""Input CSV loading (brief §2): the real files, Excel habits, and every input error."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from errors import InputError
from optimizer.loader import Dataset, load_csv
from tests.conftest import write_rows

ZONE_METADATA = {
    "Day",
    "Zone",
    "start_time",
    "end_time",
    "market_regime",
    "Regime_Confidence_%",
    "Market_regime_transition_threshold",
    "capital",
}

HEADER = ["Date", "A", "B"]
ROWS: list[list[object]] = [["2023-01-02", 1.5, -2], ["2023-01-03", 0, 3.25], ["2023-01-04", -7, 4]]


def _dmy(text: str) -> np.datetime64:
    day, month, year = (int(p) for p in text.split("-"))
    return np.datetime64(date(year, month, day))


def _same(a: Dataset, b: Dataset) -> None:
    assert a.strategies == b.strategies
    np.testing.assert_array_equal(a.dates, b.dates)
    np.testing.assert_array_equal(a.pnl, b.pnl)
    np.testing.assert_array_equal(a.blanks_per_strategy, b.blanks_per_strategy)
    assert a.zones == b.zones
    assert a.metadata == b.metadata
    assert a.date_format == b.date_format


# --- the real files ---------------------------------------------------------------------------


def test_real_slice_loads(real_slice: Path) -> None:
    data = load_csv(real_slice)
    assert data.pnl.shape == (5, 25544)
    assert data.pnl.dtype == np.float64
    assert data.date_format == "YYYY-MM-DD"
    assert data.blank_cells == 0
    assert data.blanks_per_strategy.shape == (25544,)
    assert "Day" in data.metadata
    assert data.zones is None
    assert data.strategies[0] == "STRATEGY_0001"
    assert all(name.startswith("STRATEGY_") for name in data.strategies)
    assert data.n_rows == 5
    assert data.dates.dtype == np.dtype("datetime64[D]")
    assert np.all(np.isfinite(data.pnl))


def test_real_slice_values_match_the_file_text(real_slice: Path) -> None:
    with real_slice.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    data = load_csv(real_slice)
    assert data.strategies == tuple(header[2:])
    assert data.dates.astype(str).tolist() == [row[0] for row in rows]
    assert list(data.metadata["Day"]) == [row[1] for row in rows]
    for r, c in [(0, 2), (0, 3), (2, 12_345), (4, len(header) - 1), (3, len(header) // 2)]:
        assert data.pnl[r, data.strategies.index(header[c])] == float(rows[r][c])


def test_zone_sample_loads(zones_sample: Path) -> None:
    data = load_csv(zones_sample)
    assert data.pnl.shape == (88, 20)
    assert data.date_format == "DD-MM-YYYY"
    assert data.zones is not None
    assert set(data.zones) == {"A", "B", "C", "D"}
    # The header says 'day' and 'zone' in lower case; they are metadata, not strategies.
    assert set(data.metadata) == ZONE_METADATA
    assert all(name.startswith("strategy_") for name in data.strategies)
    assert len(data.strategies) == 20


def test_zone_sample_daily_sums_the_zones_of_each_date(zones_sample: Path) -> None:
    with zones_sample.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    first_strategy = next(i for i, name in enumerate(header) if name.startswith("strategy_"))
    sums: dict[np.datetime64, np.ndarray] = defaultdict(lambda: np.zeros(len(header) - first_strategy))
    for row in rows:
        sums[_dmy(row[0])] += np.array([float(c) if c.strip() else 0.0 for c in row[first_strategy:]])
    expected_dates = sorted(sums)

    dates, pnl = load_csv(zones_sample).daily()
    assert dates.shape == (22,)
    assert dates.tolist() == [d.astype(object) for d in expected_dates]
    assert np.all(dates[1:] > dates[:-1])
    np.testing.assert_allclose(pnl, np.vstack([sums[d] for d in expected_dates]), rtol=1e-12, atol=1e-9)


# --- metadata by name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        ["Date", "Zone", "S1", "S2"],
        ["S1", "Date", "S2", "Zone"],
        ["S1", "S2", "DATE", "zone"],
        ["zOnE", "S2", "date", "S1"],
        ["S1", "Day", "Date", "S2", "Zone", "CAPITAL"],
    ],
    ids=["leading", "date-middle-zone-last", "uppercase-date-after-strategies", "mixed-case", "more-metadata"],
)
def test_metadata_recognised_by_name_at_any_position(tmp_path: Path, header: list[str]) -> None:
    records = [
        {"date": "2023-01-02", "zone": "A", "S1": 1, "S2": 10, "day": "Monday", "capital": 100},
        {"date": "2023-01-02", "zone": "B", "S1": 2, "S2": 20, "day": "Monday", "capital": 100},
        {"date": "2023-01-03", "zone": "A", "S1": 3, "S2": 30, "day": "Tuesday", "capital": 100},
    ]
    rows = [[rec[name if name.startswith("S") else name.lower()] for name in header] for rec in records]
    data = load_csv(write_rows(tmp_path / "p.csv", header, rows))

    assert sorted(data.strategies) == ["S1", "S2"]
    assert data.strategies == tuple(n for n in header if n.startswith("S"))
    s1, s2 = data.strategies.index("S1"), data.strategies.index("S2")
    np.testing.assert_array_equal(data.pnl[:, s1], [1, 2, 3])
    np.testing.assert_array_equal(data.pnl[:, s2], [10, 20, 30])
    assert data.zones == ("A", "B", "A")
    assert data.dates.astype(str).tolist() == ["2023-01-02", "2023-01-02", "2023-01-03"]
    assert {k for k in data.metadata} == {"Zone"} | ({"Day", "capital"} if "Day" in header else set())
    dates, pnl = data.daily()
    assert dates.astype(str).tolist() == ["2023-01-02", "2023-01-03"]
    np.testing.assert_array_equal(pnl[:, s1], [3, 3])
    np.testing.assert_array_equal(pnl[:, s2], [30, 30])


# --- Excel habits -----------------------------------------------------------------------------


@pytest.mark.parametrize(("newline", "bom"), [("\r\n", False), ("\n", True), ("\r\n", True)])
def test_bom_and_crlf_load_like_plain(tmp_path: Path, newline: str, bom: bool) -> None:
    plain = load_csv(write_rows(tmp_path / "plain.csv", HEADER, ROWS))
    excel = load_csv(write_rows(tmp_path / "excel.csv", HEADER, ROWS, newline=newline, bom=bom))
    _same(plain, excel)
    assert excel.strategies == ("A", "B")


def test_trailing_empty_header_columns_are_ignored(tmp_path: Path) -> None:
    plain = load_csv(write_rows(tmp_path / "plain.csv", HEADER, ROWS))
    wide = load_csv(write_rows(tmp_path / "wide.csv", [*HEADER, "", "", ""], [[*r, "", "", ""] for r in ROWS]))
    _same(plain, wide)


def test_trailing_comma_rows_are_skipped(tmp_path: Path) -> None:
    plain = load_csv(write_rows(tmp_path / "plain.csv", HEADER, ROWS))
    padded = load_csv(write_rows(tmp_path / "padded.csv", HEADER, [*ROWS, ["", "", ""], ["", "", ""]]))
    _same(plain, padded)
    assert padded.n_rows == 3


def test_cp1252_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "ansi.csv"
    path.write_bytes("Date,Straddle_€_é,B\r\n2023-01-02,1,2\r\n2023-01-03,3,4\r\n".encode("cp1252"))
    data = load_csv(path)
    assert data.strategies == ("Straddle_€_é", "B")
    np.testing.assert_array_equal(data.pnl, [[1, 2], [3, 4]])


def test_quoted_header_goes_through_csv_module(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('Date,"Straddle, 09:20",B\n2023-01-02,1,"2"\n2023-01-03,3,4\n', encoding="utf-8")
    data = load_csv(path)
    assert data.strategies == ("Straddle, 09:20", "B")
    np.testing.assert_array_equal(data.pnl, [[1, 2], [3, 4]])


def test_semicolon_delimited_file_loads(tmp_path: Path) -> None:
    plain = load_csv(write_rows(tmp_path / "plain.csv", HEADER, ROWS))
    path = tmp_path / "semi.csv"
    path.write_text("\n".join(";".join(str(c) for c in r) for r in [HEADER, *ROWS]) + "\n", encoding="utf-8")
    _same(plain, load_csv(path))


def test_blank_cells_read_as_zero_and_are_counted(tmp_path: Path) -> None:
    rows: list[list[object]] = [
        ["2023-01-02", "", 1, ""],
        ["2023-01-03", 2, "", ""],
        ["2023-01-04", " ", 3, 4],
    ]
    data = load_csv(write_rows(tmp_path / "blanks.csv", ["Date", "A", "B", "C"], rows))
    np.testing.assert_array_equal(data.pnl, [[0, 1, 0], [2, 0, 0], [0, 3, 4]])
    assert data.blanks_per_strategy.tolist() == [2, 1, 2]
    assert data.blank_cells == 5


def test_pnl_is_read_only(tmp_path: Path) -> None:
    data = load_csv(write_rows(tmp_path / "p.csv", HEADER, ROWS))
    with pytest.raises(ValueError):
        data.pnl[0, 0] = 1.0


# --- dates ------------------------------------------------------------------------------------


def test_mm_dd_yyyy_detected_when_middle_part_exceeds_12(tmp_path: Path) -> None:
    rows: list[list[object]] = [["01-13-2023", 1], ["01-14-2023", 2], ["02-01-2023", 3]]
    data = load_csv(write_rows(tmp_path / "us.csv", ["Date", "A"], rows))
    assert data.date_format == "MM-DD-YYYY"
    assert data.dates.astype(str).tolist() == ["2023-01-13", "2023-01-14", "2023-02-01"]


def test_dd_mm_yyyy_detected_when_first_part_exceeds_12(tmp_path: Path) -> None:
    rows: list[list[object]] = [["13-01-2023", 1], ["02-03-2023", 2]]
    data = load_csv(write_rows(tmp_path / "eu.csv", ["Date", "A"], rows))
    assert data.date_format == "DD-MM-YYYY"
    assert data.dates.astype(str).tolist() == ["2023-01-13", "2023-03-02"]


@pytest.mark.parametrize(
    ("date_format", "expected"),
    [("DD-MM-YYYY", ["2023-01-02", "2023-01-03"]), ("MM-DD-YYYY", ["2023-02-01", "2023-03-01"])],
)
def test_configured_date_format_is_honoured(tmp_path: Path, date_format: str, expected: list[str]) -> None:
    path = write_rows(tmp_path / "ambiguous.csv", ["Date", "A"], [["02-01-2023", 1], ["03-01-2023", 2]])
    data = load_csv(path, date_format=date_format)
    assert data.date_format == date_format
    assert data.dates.astype(str).tolist() == expected


def test_unsorted_dates_daily_sorts_and_reorders_rows(tmp_path: Path) -> None:
    rows: list[list[object]] = [["2023-01-05", 5, 50], ["2023-01-02", 2, 20], ["2023-01-03", 3, 30]]
    data = load_csv(write_rows(tmp_path / "unsorted.csv", HEADER, rows))
    assert data.dates.astype(str).tolist() == ["2023-01-05", "2023-01-02", "2023-01-03"]  # file order
    dates, pnl = data.daily()
    assert dates.astype(str).tolist() == ["2023-01-02", "2023-01-03", "2023-01-05"]
    np.testing.assert_array_equal(pnl, [[2, 20], [3, 30], [5, 50]])


def test_unsorted_zone_rows_daily_sums_and_sorts(tmp_path: Path) -> None:
    rows: list[list[object]] = [
        ["2023-01-05", "B", 5],
        ["2023-01-02", "A", 2],
        ["2023-01-05", "A", 50],
        ["2023-01-02", "B", 20],
    ]
    dates, pnl = load_csv(write_rows(tmp_path / "z.csv", ["Date", "Zone", "S"], rows)).daily()
    assert dates.astype(str).tolist() == ["2023-01-02", "2023-01-05"]
    np.testing.assert_array_equal(pnl, [[22], [55]])


# --- errors -----------------------------------------------------------------------------------

NAME = "pnl_input.csv"

ERROR_CASES: list[tuple[str, str, dict[str, object], list[str]]] = [
    # (id, file text, load_csv kwargs, fragments the message must contain)
    ("non-numeric", "Date,A,B\n2023-01-02,1,2\n2023-01-03,1,abc\n", {}, ["row 3", "'B'", "'abc'"]),
    ("inf", "Date,A,B\n2023-01-02,inf,2\n2023-01-03,1,2\n", {}, ["row 2", "'A'", "'inf'"]),
    ("minus-inf", "Date,A,B\n2023-01-02,1,2\n2023-01-03,1,-inf\n", {}, ["row 3", "'B'", "'-inf'"]),
    ("nan", "Date,A,B\n2023-01-02,1,2\n2023-01-03,nan,2\n", {}, ["row 3", "'A'", "'nan'"]),
    ("non-numeric-quoted", 'Date,"A, x",B\n2023-01-02,1,2\n2023-01-03,1,"x1"\n', {}, ["row 3", "'B'", "'x1'"]),
    ("non-numeric-after-blank-line", "Date,A\n2023-01-02,1\n\n2023-01-03,zz\n", {}, ["row 4", "'A'", "'zz'"]),
    (
        "duplicate-column",
        "Date,A,B,A\n2023-01-02,1,2,3\n2023-01-03,1,2,3\n",
        {},
        ["row 1", "column 4", "'A'", "column 2"],
    ),
    (
        "duplicate-date-column",
        "Date,A,DATE\n2023-01-02,1,2023-01-02\n2023-01-03,1,2023-01-03\n",
        {},
        ["row 1", "column 3", "column 1"],
    ),
    ("duplicate-date", "Date,A\n2023-01-02,1\n2023-01-03,2\n2023-01-02,3\n", {}, ["row 4", "row 2", "2023-01-02"]),
    (
        "duplicate-date-zone",
        "Date,Zone,A\n02-01-2023,A,1\n02-01-2023,B,2\n13-01-2023,A,3\n02-01-2023,A,4\n",
        {},
        ["row 5", "row 2", "02-01-2023", "'A'"],
    ),
    ("one-day", "Date,A,B\n2023-01-02,1,2\n", {}, ["2 days"]),
    ("one-day-two-zones", "Date,Zone,A\n2023-01-02,A,1\n2023-01-02,B,2\n", {}, ["2 days"]),
    ("no-data-rows", "Date,A,B\n", {}, ["2 days"]),
    (
        "too-few-strategies",
        "Date,A,B\n2023-01-02,1,2\n2023-01-03,1,2\n",
        {"min_strategies": 3},
        ["row 1", "PORTFOLIO.min_size"],
    ),
    ("no-strategies", "Date,Zone\n2023-01-02,A\n2023-01-03,A\n", {}, ["row 1", "strategy"]),
    ("no-date-column", "Day,A,B\nMonday,1,2\nTuesday,1,2\n", {}, ["row 1", "'Date'"]),
    ("empty-file", "", {}, ["empty"]),
    ("whitespace-file", "  \n\n", {}, ["empty"]),
    ("unnamed-column", "Date,,B\n2023-01-02,1,2\n2023-01-03,1,2\n", {}, ["row 1", "column 2"]),
    ("extra-field", "Date,A,B\n2023-01-02,1,2\n2023-01-03,1,2,3\n", {}, ["row 3", "4 fields"]),
    ("missing-field", "Date,A,B\n2023-01-02,1,2\n2023-01-03,1\n", {}, ["row 3", "2 fields"]),
    ("value-under-unnamed", "Date,A,,\n2023-01-02,1,,\n2023-01-03,1,,5\n", {}, ["row 3", "column 4"]),
    ("blank-date", "Date,A\n2023-01-02,1\n,2\n2023-01-04,3\n", {}, ["row 3", "'Date'", "blank"]),
    ("not-a-date", "Date,A\n2023-01-02,1\nyesterday,2\n", {}, ["row 3", "'Date'", "'yesterday'"]),
    ("invalid-date", "Date,A\n25-01-2023,1\n31-02-2023,2\n", {}, ["row 3", "'Date'", "'31-02-2023'"]),
    ("invalid-iso-date", "Date,A\n2023-01-02,1\n2023-02-30,2\n", {}, ["row 3", "'Date'", "'2023-02-30'"]),
    ("mixed-formats", "Date,A\n2023-01-02,1\n25-01-2023,2\n", {}, ["'Date'", "row 2", "row 3", "mixed"]),
    ("ambiguous", "Date,A\n02-01-2023,1\n03-01-2023,2\n", {}, ["'Date'", "INPUT.date_format"]),
    ("dmy-and-mdy", "Date,A\n13-01-2023,1\n01-14-2023,2\n", {}, ["'Date'", "row 2", "row 3"]),
    (
        "configured-format-mismatch",
        "Date,A\n2023-01-02,1\n2023-01-03,2\n",
        {"date_format": "DD-MM-YYYY"},
        ["row 2", "'Date'"],
    ),
]


@pytest.mark.parametrize(("text", "kwargs", "fragments"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_input_errors_are_one_line_naming_file_row_and_column(
    tmp_path: Path, text: str, kwargs: dict[str, object], fragments: list[str]
) -> None:
    path = tmp_path / NAME
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_csv(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    assert NAME in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_csv(tmp_path / "nowhere.csv")
    message = str(info.value)
    assert "\n" not in message
    assert "nowhere.csv" in message
    assert "not found" in message


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        load_csv(tmp_path)
