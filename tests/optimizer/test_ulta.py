"""ULTA in SQL equals ULTA on arrays, exactly (brief §3.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dal import open_backend
from optimizer.loader import load_csv
from optimizer.synthetic import generate_pnl
from optimizer.ulta import apply_ulta, inversions, ulta_mask


def sql_ulta(
    tmp_path: Path, dates: np.ndarray, names: list[str], pnl: np.ndarray, decide_rows: int | None = None
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    db = open_backend(f"duckdb:///{tmp_path / 'u.duckdb'}")
    try:
        db.store_pnl("u", dates, None, names, pnl)
        db.apply_ulta("u", decide_rows)
        stored = db.fetch_pnl("u")
    finally:
        db.close()
    return stored.pnl, stored.strategies, stored.inverted


def check_same(tmp_path: Path, dates: np.ndarray, names: list[str], pnl: np.ndarray) -> np.ndarray:
    sql_pnl, sql_names, sql_mask = sql_ulta(tmp_path, dates, names, pnl)
    arr_pnl, arr_names, arr_mask = apply_ulta(pnl, names)
    assert np.array_equal(sql_mask, arr_mask)
    assert sql_names == arr_names
    assert np.array_equal(sql_pnl, arr_pnl)  # bit for bit
    return arr_mask


def test_sql_equals_arrays_on_the_real_slice(tmp_path: Path, real_slice: Path) -> None:
    data = load_csv(real_slice)
    mask = check_same(tmp_path, data.dates, list(data.strategies), data.pnl)
    assert 0 < mask.sum() < len(mask)


def test_sql_equals_arrays_on_generated_data(tmp_path: Path) -> None:
    pnl = generate_pnl(3000, 82, seed=9)
    pnl[:, :4] = 0.0
    pnl[:, 4] = np.tile([100.10, -50.05, -50.05], 28)[:82]  # total zero up to rounding: not a loser
    dates = np.datetime64("2023-08-03") + np.arange(82)
    mask = check_same(tmp_path, dates, [f"s{j}" for j in range(3000)], pnl)
    assert not mask[:5].any()
    assert abs(mask.mean() - 0.55) < 0.1


def test_sql_decision_on_a_training_window_equals_arrays(tmp_path: Path) -> None:
    pnl = generate_pnl(2000, 82, seed=4)
    dates = np.datetime64("2023-08-03") + np.arange(82)
    sql_pnl, _, sql_mask = sql_ulta(tmp_path, dates, [f"s{j}" for j in range(2000)], pnl, decide_rows=61)
    mask = ulta_mask(pnl[:61])
    assert np.array_equal(sql_mask, mask)
    assert (mask != ulta_mask(pnl)).sum() > 50  # the window matters for many strategies
    assert np.array_equal(sql_pnl, np.where(mask, -pnl, pnl))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 20), st.integers(1, 30))
def test_inverting_twice_is_the_identity(seed: int, days: int, strategies: int) -> None:
    pnl = np.round(np.random.default_rng(seed).normal(0, 100, (days, strategies)), 2)
    once, names, mask = apply_ulta(pnl, [f"s{j}" for j in range(strategies)])
    assert (once.sum(axis=0) >= -1e-9 * np.abs(once).sum(axis=0)).all()  # no loser is left
    assert not ulta_mask(once).any()
    back = np.where(mask, -once, once)
    assert np.array_equal(back, pnl)
    assert all(n.endswith("_inv") == m for n, m in zip(names, mask, strict=True))


def test_report_rows_describe_the_original_series() -> None:
    pnl = np.array([[-10.0, 5.0], [-30.0, 5.0], [20.0, -1.0]])
    _, _, mask = apply_ulta(pnl, ["a", "b"])
    (row,) = inversions(pnl, ["a", "b"], mask)
    assert (row.name, row.original_total, row.inverted_total, row.worst_day) == ("a", -20.0, 20.0, -30.0)
    assert row.total_to_worst_day == pytest.approx(-20.0 / 30.0)
