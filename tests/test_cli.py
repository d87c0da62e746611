"""The ``heavyopt`` command as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.synthetic import write_csv


def heavyopt(*args: str, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAVYOPT_")}
    env.update({"XDG_DATA_HOME": str(cwd / "xdg"), "COLUMNS": "200", **(env_extra or {})})
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


SMALL = [
    "--set",
    "PORTFOLIO.min_size=5",
    "--set",
    "PORTFOLIO.max_size=6",
    "--set",
    "OPTIMIZATION.evaluation_budget=300",
]


def test_run_prints_the_winner_and_the_run_folder(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", 200, 30, seed=2)
    done = heavyopt("run", "in.csv", "-q", *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert run_dir.is_dir() and run_dir.parent == tmp_path / "output"
    assert "winner: size" in done.stdout
    assert "validation: In sample Sharpe" in done.stdout and "Verdict:" in done.stdout
    summary = json.loads((run_dir / "execution_summary.json").read_text())
    assert summary["config"]["PORTFOLIO"]["max_size"] == 6


def test_config_file_seed_and_out(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", 200, 30, seed=2)
    (tmp_path / "job.ini").write_text(
        "[PORTFOLIO]\nmin_size = 5\nmax_size = 5\n[OPTIMIZATION]\nevaluation_budget = 200\n"
    )
    done = heavyopt("run", "in.csv", "-q", "--config", "job.ini", "--seed", "7", "--out", "res", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(next((tmp_path / "res").glob("run_*/execution_summary.json")).read_text())
    assert summary["seed"] == 7 and {r["size"] for r in summary["results"]} == {5}


BAD_INPUTS = [
    ("Date,a,b,c,d,e,f\n2024-01-01,1,2,3,4,5,6\n2024-01-02,1,abc,3,4,5,6\n", "row 3, column 'b'"),
    ("Date,a,b,c,d,e,f\n2024-01-01,1,2,3,4,5,inf\n2024-01-02,1,2,3,4,5,6\n", "row 2, column 'f'"),
    ("Date,a,a,c,d,e,f\n2024-01-01,1,2,3,4,5,6\n2024-01-02,1,2,3,4,5,6\n", "row 1, column 3 'a'"),
    ("Date,a,b,c,d,e,f\n2024-01-01,1,2,3,4,5,6\n2024-01-01,1,2,3,4,5,6\n", "row 3"),
    ("Date,a,b,c,d,e,f\n2024-01-01,1,2,3,4,5,6\n", "at least 2 days"),
    ("Date,a,b\n2024-01-01,1,2\n2024-01-02,1,2\n", "PORTFOLIO.min_size"),
]


@pytest.mark.parametrize(("text", "where"), BAD_INPUTS)
def test_bad_input_is_one_clear_line(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    done = heavyopt("run", "bad.csv", "-q", *SMALL, cwd=tmp_path)
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1  # exactly one line, nothing around it
    line = done.stderr.strip()
    assert line.startswith("heavyopt: input error: bad.csv") and where in line
    assert not (tmp_path / "output").exists()


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", 50, 10, seed=2)
    done = heavyopt("run", "in.csv", "--set", "PORTFOLIO.max_sise=4", cwd=tmp_path)
    assert done.returncode == 2 and "PORTFOLIO.max_sise" in done.stderr and "Traceback" not in done.stderr
    done = heavyopt("run", "in.csv", cwd=tmp_path, env_extra={"HEAVYOPT_GENERAL_METRIC": "luck"})
    assert done.returncode == 2 and "GENERAL.metric" in done.stderr and "HEAVYOPT_GENERAL_METRIC" in done.stderr


def test_missing_file(tmp_path: Path) -> None:
    done = heavyopt("run", "nope.csv", cwd=tmp_path)
    assert done.returncode == 3 and "nope.csv: file not found" in done.stderr


def test_generate_is_seeded(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        assert (
            heavyopt("generate", name, "--strategies", "30", "--days", "5", "--seed", "3", cwd=tmp_path).returncode == 0
        )
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_bench_reports_every_step(tmp_path: Path) -> None:
    done = heavyopt(
        "bench",
        "--strategies",
        "600",
        "--days",
        "20",
        "--seeds",
        "2",
        "--budget",
        "300",
        "--json",
        "b.json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "b.json").read_text())
    rows = {r["step"]: r for r in payload["rows"]}
    for step in (
        "parse CSV (row-oriented)",
        "ULTA in SQL",
        "ULTA on arrays",
        "batch fitness n=50, 1 thread",
        "swap moves n=50, 1 thread",
        "top 20 pairs (blockwise GEMM)",
    ):
        assert rows[step]["seconds"] > 0
    assert rows["batch fitness n=50, 1 thread"]["baseline_seconds"] > 0
    quality = {q["algorithm"]: q for q in payload["quality"]["algorithms"]}
    assert len(quality) == 8 and all(q["minimum"] <= q["median"] <= q["maximum"] for q in quality.values())
    assert "quality: best fitness" in done.stdout


def test_bench_landscapes_prints_each_algorithms_share_of_the_planted_fitness(tmp_path: Path) -> None:
    done = heavyopt("bench", "--landscapes", "--seeds", "1", "--budget", "2000", "--json", "l.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "planted landscapes" in done.stdout and "families (families 20, copies 20)" in done.stdout
    rows = json.loads((tmp_path / "l.json").read_text())["landscapes"]
    assert [(r["landscape"], r["seed"]) for r in rows] == [("plateau", 0)] * 2 + [("families", 0)] * 2
    for row in rows:
        assert len(row["guided"]) == len(row["blind"]) == 8
        # Random search is the blind baseline: the guide does not touch it.
        assert row["guided"]["random_search"] == row["blind"]["random_search"]
    plateau = rows[0]
    assert max(plateau["guided"].values()) > 0.98 and plateau["guided"]["random_search"] < 0


@pytest.mark.slow
def test_full_width_run_stays_small(tmp_path: Path) -> None:
    """Production shape, sizes 35..37: completes, with per-step timings and peak memory well under 2 GB."""
    write_csv(tmp_path / "big.csv", 25_544, 82, seed=1)
    done = heavyopt("run", "big.csv", "-q", "--set", "PORTFOLIO.max_size=37", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(next((tmp_path / "output").glob("run_*/execution_summary.json")).read_text())
    assert summary["input"]["strategies"] == 25_544 and summary["input"]["days"] == 82
    assert {r["size"] for r in summary["results"]} == {35, 36, 37}
    assert summary["peak_rss_mb"] < 2048
