"""Zone mode (brief §6): excluded rows, weights, the combination, per-zone optima, the sample."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from errors import ConfigError
from optimizer.config import load_config
from optimizer.loader import load_csv
from optimizer.pipeline import JobOutcome, run_job
from optimizer.zones import combine, exclude_rows, zone_weights

ZONE_SETS = [
    "OPTIMIZATION.zone_optimization_enabled=True",
    "OPTIMIZATION.evaluation_budget=2000",
    "COMPUTE.workers=1",
]


def write_zoned(path: Path, dates: int, zones: list[str], pnl: np.ndarray) -> Path:
    """``pnl`` shape (dates, zones, strategies) → one row per (date, zone)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Date", "Zone", *(f"s{j}" for j in range(pnl.shape[2]))])
        for d in range(dates):
            for z, zone in enumerate(zones):
                writer.writerow([f"2024-03-{d + 1:02d}", zone, *pnl[d, z].tolist()])
    return path


def run(tmp: Path, source: Path, out: str, *extra: str) -> JobOutcome:
    cfg = load_config(environ={}, overrides=[*ZONE_SETS, f"DATABASE.data_dir={tmp / 'data'}", *extra])
    return run_job(source, cfg, out_dir=tmp / out)


def test_empty_and_outside_market_rows_are_excluded_and_counted(tmp_path: Path) -> None:
    text = "Date,Zone,a,b,c\n"
    text += "".join(f"2024-01-0{d},{z},1,2,3\n" for d in (1, 2, 3) for z in ("A", "B"))
    text += "2024-01-01,,9,9,9\n2024-01-02,outside market,9,9,9\n2024-01-03, Outside Market ,9,9,9\n"
    (tmp_path / "z.csv").write_text(text)
    data, dropped = exclude_rows(load_csv(tmp_path / "z.csv", min_strategies=2))
    assert dropped == 3 and data.n_rows == 6 and set(data.zones or ()) == {"A", "B"}
    assert not (data.pnl == 9).any()


def test_zone_weights_are_normalised_and_checked() -> None:
    zones = ["A", "B", "C"]
    assert zone_weights(load_config(environ={}), zones) == pytest.approx({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})
    cfg = load_config(environ={}, overrides=["ZONE_WEIGHTS.a=2", "ZONE_WEIGHTS.C=0"])
    assert zone_weights(cfg, zones) == pytest.approx({"A": 2 / 3, "B": 1 / 3, "C": 0.0})  # unlisted B weighs 1
    with pytest.raises(ConfigError, match=r"ZONE_WEIGHTS\.E: the input has no zone 'E' \(its zones: A, B, C\)"):
        zone_weights(load_config(environ={}, overrides=["ZONE_WEIGHTS.E=1"]), zones)
    with pytest.raises(ConfigError, match="every weight is 0"):
        zone_weights(load_config(environ={}, overrides=[f"ZONE_WEIGHTS.{z}=0" for z in zones]), zones)


def test_the_combination_is_the_weighted_sum_of_each_date(tmp_path: Path) -> None:
    pnl = np.random.default_rng(0).normal(0, 10, (4, 3, 5)).round(2)
    data = load_csv(write_zoned(tmp_path / "z.csv", 4, ["A", "B", "C"], pnl), min_strategies=2)
    dates, combined = combine(data, {"A": 0.5, "B": 0.25, "C": 0.25})
    assert len(dates) == 4
    np.testing.assert_allclose(combined, 0.5 * pnl[:, 0] + 0.25 * pnl[:, 1] + 0.25 * pnl[:, 2], atol=1e-12)


def planted_zones(tmp_path: Path, seed: int = 1) -> tuple[Path, dict[str, set[str]]]:
    """3 zones × 30 dates × 60 strategies; in each zone 4 planted strategies gain 100 ± 5 a day (noise elsewhere).

    With ``roi − 10·avgcorr`` the planted set is each zone's unique optimum: swapping one member out
    loses at least (min planted total − max |noise total|)/4, checked to exceed the most the penalty
    can give back (10·2). |noise| because ULTA turns a big loser into a big winner.
    """
    rng = np.random.default_rng(seed)
    zones = ["A", "B", "C"]
    pnl = rng.normal(0, 100, (30, 3, 60))
    planted = {zone: {f"s{j}" for j in range(10 * z, 10 * z + 4)} for z, zone in enumerate(zones)}
    for z in range(3):
        pnl[:, z, 10 * z : 10 * z + 4] = 100 + rng.normal(0, 5, (30, 4))
        totals = pnl[:, z].sum(axis=0)
        noise = np.abs(np.delete(totals, range(10 * z, 10 * z + 4)))
        assert (totals[10 * z : 10 * z + 4].min() - noise.max()) / 4 > 10 * 2
    return write_zoned(tmp_path / "planted.csv", 30, zones, pnl.round(2)), planted


def test_each_zone_finds_its_planted_optimum(tmp_path: Path) -> None:
    source, planted = planted_zones(tmp_path)
    sizes = ["ZONE_SPECIFIC_OPTIMIZATION.min_size=4", "ZONE_SPECIFIC_OPTIMIZATION.max_size=4"]
    done = run(tmp_path, source, "out", "GENERAL.metric=roi", "PORTFOLIO.min_size=4", "PORTFOLIO.max_size=5", *sizes)
    runs = {run.zone: run for run in done.report.zone_runs or ()}
    assert set(runs) == {"A", "B", "C"}
    for zone, names in planted.items():
        assert set(runs[zone].winner.strategies) == names, zone
        assert runs[zone].weight == pytest.approx(1 / 3)
    summary = json.loads((done.run_dir / "execution_summary.json").read_text())
    assert [r["zone"] for r in summary["zones"]["runs"]] == ["A", "B", "C"]
    assert (done.run_dir / "zone_equity_curves.png").exists()


def test_a_zone_with_weight_zero_does_not_move_the_combined_result(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pnl = rng.normal(0, 100, (20, 3, 30)).round(2)
    first = write_zoned(tmp_path / "first.csv", 20, ["A", "B", "C"], pnl)
    pnl[:, 2] = rng.normal(500, 300, (20, 30)).round(2)  # zone C is different data altogether
    second = write_zoned(tmp_path / "second.csv", 20, ["A", "B", "C"], pnl)
    sets = [
        "ZONE_WEIGHTS.C=0",
        "PORTFOLIO.min_size=4",
        "PORTFOLIO.max_size=5",
        "ZONE_SPECIFIC_OPTIMIZATION.min_size=3",
        "ZONE_SPECIFIC_OPTIMIZATION.max_size=3",
    ]
    a, b = run(tmp_path, first, "a", *sets).report, run(tmp_path, second, "b", *sets).report
    key = lambda rep: [(r.size, r.algorithm, r.fitness, r.strategies) for r in rep.results]  # noqa: E731
    assert key(a) == key(b)
    zone_c = next(run for run in a.zone_runs or () if run.zone == "C")
    assert zone_c.weight == 0.0


def test_zone_mode_on_a_file_without_zones_says_so(tmp_path: Path) -> None:
    from optimizer.synthetic import write_csv

    done = run(
        tmp_path,
        write_csv(tmp_path / "flat.csv", 60, 20, seed=1),
        "out",
        "PORTFOLIO.min_size=4",
        "PORTFOLIO.max_size=4",
    )
    assert done.report.zone_runs is None
    assert "has no `Zone` column" in (done.run_dir / "zone_analysis_report.md").read_text()
    assert json.loads((done.run_dir / "execution_summary.json").read_text())["zones"] is None


def test_the_sample_in_zone_mode_names_all_four_zones(tmp_path: Path, zones_sample: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAVYOPT_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    sets = [
        "OPTIMIZATION.zone_optimization_enabled=True",
        "PORTFOLIO.min_size=5",
        "PORTFOLIO.max_size=6",
        "ZONE_SPECIFIC_OPTIMIZATION.min_size=3",
        "ZONE_SPECIFIC_OPTIMIZATION.max_size=4",
        "OPTIMIZATION.evaluation_budget=1000",
    ]
    args = [sys.executable, "-m", "cli", "run", str(zones_sample), "-q", "--out", str(tmp_path / "out")]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    report = (run_dir / "zone_analysis_report.md").read_text()
    assert "## Each zone's own best portfolio" in report
    for zone in "ABCD":
        assert f"| {zone} | 0.2500 | 22 |" in report and f"### Zone {zone}:" in report


def test_a_date_only_a_weight_zero_zone_has_is_not_a_combined_day(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    pnl = rng.normal(0, 100, (6, 3, 12)).round(2)
    source = write_zoned(tmp_path / "z.csv", 6, ["A", "B", "C"], pnl)
    with source.open("a", newline="") as fh:  # a date on which only zone C traded
        csv.writer(fh).writerow(["2024-03-28", "C", *rng.normal(0, 100, 12).round(2).tolist()])
    sets = [
        "ZONE_WEIGHTS.C=0",
        "PORTFOLIO.min_size=3",
        "PORTFOLIO.max_size=3",
        "ZONE_SPECIFIC_OPTIMIZATION.min_size=3",
        "ZONE_SPECIFIC_OPTIMIZATION.max_size=3",
    ]
    done = run(tmp_path, source, "out", *sets)
    assert done.report.input.days == 6 and "2024-03-28" not in done.report.dates


def test_zone_preconditions_are_checked_before_any_work(tmp_path: Path) -> None:
    from errors import InputError

    pnl = np.random.default_rng(6).normal(0, 100, (5, 2, 8)).round(2)
    source = write_zoned(tmp_path / "z.csv", 5, ["A", "B"], pnl)
    with pytest.raises(ConfigError, match=r"ZONE_SPECIFIC_OPTIMIZATION\.min_size = 10 is more than the 8 strategies"):
        run(tmp_path, source, "out", "PORTFOLIO.min_size=3", "PORTFOLIO.max_size=3")
    with source.open("a", newline="") as fh:
        csv.writer(fh).writerow(["2024-03-20", "Lonely", *[1.0] * 8])
    with pytest.raises(InputError, match="zone 'Lonely' has 1 trading day"):
        run(
            tmp_path,
            source,
            "out",
            "PORTFOLIO.min_size=3",
            "PORTFOLIO.max_size=3",
            "ZONE_SPECIFIC_OPTIMIZATION.min_size=3",
        )
    assert not (tmp_path / "out").exists()


def test_zone_mode_ulta_report_shows_the_inputs_own_totals(tmp_path: Path) -> None:
    pnl = np.random.default_rng(7).normal(0, 100, (8, 2, 10)).round(2)
    source = write_zoned(tmp_path / "z.csv", 8, ["$x^$", "B"], pnl)
    sets = [
        "ZONE_WEIGHTS.B=3",
        "PORTFOLIO.min_size=3",
        "PORTFOLIO.max_size=3",
        "ZONE_SPECIFIC_OPTIMIZATION.min_size=3",
        "ZONE_SPECIFIC_OPTIMIZATION.max_size=3",
    ]
    done = run(tmp_path, source, "out", *sets)
    # 8 days are too few to validate, so ULTA decides on every day, on the combination: $x^$ weighs 1/4, B 3/4.
    combined_totals = (0.25 * pnl[:, 0, :] + 0.75 * pnl[:, 1, :]).sum(axis=0)
    totals = pnl.sum(axis=(0, 1))  # the input's own totals, zones summed
    assert ((combined_totals < 0) != (totals < 0)).any()  # this input tells the two rules apart
    assert [inv.name for inv in done.report.inversions] == [f"s{j}" for j in np.flatnonzero(combined_totals < 0)]
    for inv in done.report.inversions:
        assert inv.original_total == pytest.approx(totals[int(inv.name[1:])])
    assert (
        "decision was made on the zone-weighted combination" in (done.run_dir / "ulta_inversion_report.md").read_text()
    )
    assert (done.run_dir / "error_log.txt").read_text().startswith("No errors")  # '$' in a zone name drew fine
    assert (done.run_dir / "zone_equity_curves.png").exists()


def test_job_ids_are_plain(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        run_job(tmp_path / "x.csv", load_config(environ={}), out_dir=tmp_path, job_id="a.z1")


def test_blank_cells_of_excluded_rows_are_not_counted(tmp_path: Path) -> None:
    text = "Date,Zone,a,b,c\n2024-01-01,A,1,,3\n2024-01-02,A,1,2,3\n2024-01-03,Outside Market,,,\n"
    (tmp_path / "z.csv").write_text(text)
    data = load_csv(tmp_path / "z.csv", min_strategies=2)
    assert data.blank_cells == 4
    kept, dropped = exclude_rows(data)
    assert dropped == 1 and kept.blank_cells == 1 and kept.blanks_per_strategy.tolist() == [0, 1, 0]
