"""The orchestrator end to end on the embedded default (DuckDB + NumPy)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import algorithms
from algorithms.fitness import Objective
from algorithms.reference import reference_fitness
from dal import open_backend
from errors import InputError
from optimizer.config import Config, database_url, load_config
from optimizer.loader import load_csv
from optimizer.pipeline import run_job
from optimizer.synthetic import write_csv
from optimizer.ulta import apply_ulta, ulta_mask

SETS = ["PORTFOLIO.min_size=5", "PORTFOLIO.max_size=7", "OPTIMIZATION.evaluation_budget=500", "COMPUTE.workers=1"]
ALGORITHMS = (
    "genetic_algorithm",
    "particle_swarm",
    "simulated_annealing",
    "differential_evolution",
    "ant_colony",
    "hill_climbing",
    "bayesian_optimization",
    "random_search",
)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "in.csv", 300, 40, seed=5)


def config(tmp_path: Path, *extra: str):
    return load_config(overrides=[*SETS, f"DATABASE.data_dir={tmp_path / 'data'}", *extra])


def stored_job(cfg: Config, job_id: str) -> dict[str, Any] | None:
    """The job's row in the job's database, as a later reader sees it."""
    db = open_backend(database_url(cfg))
    try:
        return db.job(job_id)
    finally:
        db.close()


def test_run_writes_the_summary_and_best_portfolios(tmp_path: Path, csv_file: Path) -> None:
    steps: list[tuple[str, float]] = []
    outcome = run_job(csv_file, config(tmp_path), out_dir=tmp_path / "out", progress=lambda s, p: steps.append((s, p)))
    run_dir = outcome.run_dir
    assert (
        run_dir.parent == tmp_path / "out" and run_dir.name.startswith("run_") and run_dir.name.endswith(outcome.job_id)
    )
    summary = json.loads((run_dir / "execution_summary.json").read_text())
    assert summary["schema_version"] == 3
    timed = {"load", "store", "ulta", "fetch", "correlation", "search", "validation", "contributions", "history"}
    assert set(summary["timings_s"]) == timed
    assert [(r["size"], r["algorithm"]) for r in summary["results"]] == [
        (size, name) for size in (5, 6, 7) for name in ALGORITHMS
    ]
    for r in summary["results"]:
        assert {"size", "algorithm", "fitness", "evaluations", "seconds"} <= set(r)
        assert r["evaluations"] == 500 and r["status"] == "ok"
    best = max(summary["results"], key=lambda r: r["fitness"])
    in_sample = summary["in_sample_winner"]
    assert (in_sample["size"], in_sample["algorithm"], in_sample["fitness"]) == (
        best["size"],
        best["algorithm"],
        best["fitness"],
    )
    winner = summary["winner"]  # chosen on the selection window (40 days: search 20, selection 10, test 10)
    assert len(set(winner["strategies"])) == winner["size"] and 5 <= winner["size"] <= 7
    assert summary["validation"]["method"] == "holdout"
    assert [w["days"] for w in summary["validation"]["windows"]] == [20, 10, 10]
    assert summary["input"]["strategies"] == 300 and summary["input"]["days"] == 40
    assert summary["input"]["sha256"] == hashlib.sha256(csv_file.read_bytes()).hexdigest()
    assert summary["ulta"]["inverted"] > 0
    assert sorted(p.name for p in run_dir.glob("best_portfolio_size*.txt")) == [
        f"best_portfolio_size{n}.txt" for n in (5, 6, 7)
    ]
    assert [s for s, _ in steps if ":" not in s] == [
        "load",
        "store",
        "ulta",
        "fetch",
        "correlation",
        "search",
        "validation",
        "contributions",
        "history",
        "outputs",
        "done",
    ]
    assert [p for _, p in steps] == sorted(p for _, p in steps) and steps[-1] == ("done", 100.0)
    assert "skipped_algorithms" not in summary  # removed in schema 3: it was always empty


def test_winner_fitness_matches_an_independent_recomputation(tmp_path: Path, csv_file: Path) -> None:
    outcome = run_job(csv_file, config(tmp_path, "VALIDATION.method=none"), out_dir=tmp_path / "out")
    data = load_csv(csv_file)
    pnl, names, _ = apply_ulta(data.pnl, data.strategies)
    index = {n: j for j, n in enumerate(names)}
    members = np.array([index[n] for n in outcome.report.winner.strategies])
    expected = reference_fitness(pnl, members, Objective())
    assert outcome.report.winner.fitness == pytest.approx(expected, rel=1e-9)


def test_validated_fitness_is_the_search_windows_with_the_training_windows_ulta(tmp_path: Path, csv_file: Path) -> None:
    outcome = run_job(csv_file, config(tmp_path), out_dir=tmp_path / "out")
    v = outcome.report.validation
    assert v is not None and v.method == "holdout"
    search_days = v.folds[-1].windows[0].days
    data = load_csv(csv_file)
    inverted = ulta_mask(data.pnl[: v.train_days])
    oriented = np.where(inverted, -data.pnl, data.pnl)
    names = [f"{n}_inv" if m else n for n, m in zip(data.strategies, inverted.tolist(), strict=True)]
    index = {n: j for j, n in enumerate(names)}
    for winner in (outcome.report.winner, outcome.report.in_sample_winner):
        assert winner is not None
        members = np.array([index[n] for n in winner.strategies])
        expected = reference_fitness(oriented[:search_days], members, Objective())
        assert winner.fitness == pytest.approx(expected, rel=1e-9)


def test_same_seed_same_results(tmp_path: Path, csv_file: Path) -> None:
    a = run_job(csv_file, config(tmp_path), out_dir=tmp_path / "a").report
    b = run_job(csv_file, config(tmp_path), out_dir=tmp_path / "b").report
    c = run_job(csv_file, config(tmp_path, "GENERAL.seed=99"), out_dir=tmp_path / "c").report
    key = lambda rep: [(r.size, r.algorithm, r.fitness, r.strategies) for r in rep.results]  # noqa: E731
    assert key(a) == key(b)
    assert key(a) != key(c)


def test_history_is_stored(tmp_path: Path, csv_file: Path) -> None:
    cfg = config(tmp_path)
    outcome = run_job(csv_file, cfg, out_dir=tmp_path / "out")
    db = open_backend(database_url(cfg))
    try:
        job = db.job(outcome.job_id)
        assert job is not None and job["status"] == "completed" and job["run_dir"] == str(outcome.run_dir)
        assert json.loads(job["config_json"])["PORTFOLIO"]["max_size"] == 7
        stored = [
            (r["size"], r["algorithm"], r["status"], r["fitness"], r["evaluations"], tuple(r["strategies"]))
            for r in db.results(outcome.job_id)
        ]
        reported = [
            (r.size, r.algorithm, r.status, r.fitness, r.evaluations, r.strategies) for r in outcome.report.results
        ]
        assert len(stored) == 3 * len(ALGORITHMS)
        assert sorted(stored) == sorted(reported)
    finally:
        db.close()


@dataclass(frozen=True)
class Broken:
    name: ClassVar[str] = "broken"
    section: ClassVar[str] = "PARTICLE_SWARM"
    bounds: ClassVar[dict[str, tuple[float, float]]] = {}

    def search(self, evaluator: object, rng: object) -> None:
        raise RuntimeError("kaput")


def test_a_failing_algorithm_is_recorded_and_the_job_goes_on(
    tmp_path: Path, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(algorithms.REGISTRY, "use_particle_swarm", Broken)
    outcome = run_job(csv_file, config(tmp_path), out_dir=tmp_path / "out")
    failed = [r for r in outcome.report.results if r.status == "failed"]
    assert [(r.size, r.algorithm) for r in failed] == [(5, "broken"), (6, "broken"), (7, "broken")]
    assert all("RuntimeError: kaput" in r.error and r.fitness is None and r.strategies == () for r in failed)
    # The job went on: every other algorithm ran its whole budget at every size, and the winner is one of theirs.
    ok = [r for r in outcome.report.results if r.status == "ok"]
    assert sorted((r.size, r.algorithm) for r in ok) == sorted(
        (size, name) for size in (5, 6, 7) for name in ALGORITHMS if name != "particle_swarm"
    )
    assert all(r.evaluations == 500 for r in ok)
    in_sample = outcome.report.in_sample_winner
    assert in_sample is not None and in_sample.algorithm in {r.algorithm for r in ok}
    assert in_sample.fitness == max(r.fitness for r in ok)


def test_without_ulta_nothing_is_inverted(tmp_path: Path, csv_file: Path) -> None:
    outcome = run_job(csv_file, config(tmp_path, "OPTIMIZATION.apply_ulta_logic=False"), out_dir=tmp_path / "o")
    assert outcome.report.inversions == ()
    assert not any(n.endswith("_inv") for n in outcome.report.winner.strategies)


def test_strat_limit_keeps_the_best_strategies(tmp_path: Path, csv_file: Path) -> None:
    outcome = run_job(csv_file, config(tmp_path, "GENERAL.strat_limit=20"), out_dir=tmp_path / "o")
    assert outcome.report.input.strategies == 300
    chosen = {n for r in outcome.report.results for n in r.strategies}
    assert len(chosen) <= 20


def test_sizes_are_capped_at_the_strategies_available(tmp_path: Path) -> None:
    small = write_csv(tmp_path / "small.csv", 6, 10, seed=1)
    outcome = run_job(small, config(tmp_path), out_dir=tmp_path / "o")
    assert sorted({r.size for r in outcome.report.results}) == [5, 6]


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,a,b,c,d,e,f\n2024-01-01,1,2,3,4,5,6\n2024-01-02,1,x,3,4,5,6\n")
    with pytest.raises(InputError, match=r"bad\.csv, row 3, column 'b'"):
        run_job(bad, config(tmp_path), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_real_slice_end_to_end(tmp_path: Path, real_slice: Path) -> None:
    outcome = run_job(
        real_slice, config(tmp_path, "PORTFOLIO.min_size=35", "PORTFOLIO.max_size=35"), out_dir=tmp_path / "out"
    )
    assert outcome.report.input.strategies == 25_544 and outcome.report.input.days == 5
    assert len(outcome.report.winner.strategies) == 35


def test_a_name_clash_after_ulta_is_an_input_error(tmp_path: Path) -> None:
    rows = "\n".join(f"2024-01-{d:02d},{-10 - d},{d},1,2,3,4,5" for d in range(1, 6))
    clash = tmp_path / "clash.csv"
    clash.write_text("Date,A,A_inv,c,d,e,f,g\n" + rows + "\n")
    with pytest.raises(InputError, match=r"clash\.csv, row 1: columns 'A' and 'A_inv' are both named 'A_inv'"):
        run_job(clash, config(tmp_path), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_algorithm_succeeds_when_the_size_equals_the_strategies(tmp_path: Path) -> None:
    small = write_csv(tmp_path / "small.csv", 6, 10, seed=1)
    outcome = run_job(small, config(tmp_path), out_dir=tmp_path / "o")
    assert all(r.status == "ok" for r in outcome.report.results)


def test_a_failing_prune_does_not_fail_a_completed_job(
    tmp_path: Path, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dal.duckdb_backend import DuckDBBackend

    def broken(self: object, keep: int) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(DuckDBBackend, "prune", broken)
    cfg = config(tmp_path)
    outcome = run_job(csv_file, cfg, out_dir=tmp_path / "out")
    job = stored_job(cfg, outcome.job_id)
    assert job is not None and job["status"] == "completed"


def test_an_unexpected_error_fails_the_job_with_its_reason(
    tmp_path: Path, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from errors import JobFailed
    from optimizer import pipeline

    def explode(*args: object, **kwargs: object) -> None:
        raise KeyError("lost column")

    monkeypatch.setattr(pipeline, "scan_pairs", explode)
    cfg = config(tmp_path)
    with pytest.raises(JobFailed, match="job failed: KeyError: 'lost column'"):
        run_job(csv_file, cfg, out_dir=tmp_path / "out", job_id="j-1")
    assert not (tmp_path / "out").exists()
    job = stored_job(cfg, "j-1")
    assert job is not None and job["status"] == "failed" and "lost column" in job["error"]


def test_worker_processes_that_cannot_start_fail_the_job_with_its_reason(
    tmp_path: Path, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's pool starts after the database is open: its failure (no file descriptors left,
    /dev/shm full) is the job's, recorded on it like any other."""
    from errors import JobFailed
    from optimizer import parallel

    def no_descriptors(*args: object, **kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_descriptors)
    cfg = config(tmp_path, "COMPUTE.workers=2")
    with pytest.raises(JobFailed, match=r"job failed: OSError: .*Too many open files"):
        run_job(csv_file, cfg, out_dir=tmp_path / "out", job_id="j-2")
    assert not (tmp_path / "out").exists()
    job = stored_job(cfg, "j-2")
    assert job is not None and job["status"] == "failed" and "Too many open files" in job["error"]


def test_a_broken_database_does_not_hide_the_jobs_own_error(
    tmp_path: Path, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dal.duckdb_backend import DuckDBBackend
    from optimizer import pipeline

    real = DuckDBBackend.record_job

    def flaky(self: DuckDBBackend, job_id: str, **fields: object) -> None:
        if fields.get("status") == "failed":
            raise RuntimeError("database gone")
        real(self, job_id, **fields)

    def explode(*args: object, **kwargs: object) -> None:
        raise InputError("input error: original reason")

    monkeypatch.setattr(DuckDBBackend, "record_job", flaky)
    monkeypatch.setattr(pipeline, "scan_pairs", explode)
    with pytest.raises(InputError, match="original reason"):
        run_job(csv_file, config(tmp_path), out_dir=tmp_path / "out")


def test_a_failing_writer_is_logged_and_the_others_still_write(
    tmp_path: Path, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outputs import writers

    def broken(report: object, folder: Path) -> None:
        raise OSError("share went away")

    monkeypatch.setitem(writers.WRITERS, "best_portfolio_size<n>.txt", broken)
    cfg = config(tmp_path)
    outcome = run_job(csv_file, cfg, out_dir=tmp_path / "out")
    assert outcome.writer_errors == ("best_portfolio_size<n>.txt: OSError: share went away",)
    assert (outcome.run_dir / "execution_summary.json").exists()
    assert "share went away" in (outcome.run_dir / "error_log.txt").read_text()
    job = stored_job(cfg, outcome.job_id)
    assert job is not None and job["status"] == "completed" and "share went away" in job["error"]


def test_the_process_pool_gives_the_same_results_as_one_process(tmp_path: Path, csv_file: Path) -> None:
    here = run_job(csv_file, config(tmp_path), out_dir=tmp_path / "a").report
    pooled = run_job(csv_file, config(tmp_path, "COMPUTE.workers=2"), out_dir=tmp_path / "b").report
    assert pooled.compute["workers"] == 2
    key = lambda rep: [(r.size, r.algorithm, r.fitness, r.strategies, r.evaluations) for r in rep.results]  # noqa: E731
    assert key(here) == key(pooled)
