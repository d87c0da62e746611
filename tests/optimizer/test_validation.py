"""Validation: the windows, the choice, and jobs on worlds whose future is known (docs/validation.md)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from optimizer.config import Validation, load_config
from optimizer.pipeline import run_job
from optimizer.ulta import ulta_mask
from optimizer.validation import Candidate, choose
from optimizer.windows import Split, plan
from tests.optimizer.worlds import hedged_world, noise_world, sharpe, with_test_window_payer

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "execution_summary.schema.json").read_text())
SMALL = [
    "PORTFOLIO.min_size=10",
    "PORTFOLIO.max_size=12",
    "OPTIMIZATION.evaluation_budget=2000",
    "COMPUTE.workers=1",
]


def config(tmp_path: Path, *extra: str):
    return load_config(overrides=[*SMALL, f"DATABASE.data_dir={tmp_path / 'data'}", *extra])


# ---- the windows -------------------------------------------------------------------------------


def test_holdout_windows_of_the_production_shape() -> None:
    p = plan(82, Validation())
    assert p.method == "holdout" and p.note == ""
    (split,) = p.splits
    assert (split.train, split.selection, split.test) == (range(0, 46), range(46, 62), range(62, 82))
    assert split.unseen == range(46, 82)


def test_in_sample_selection_searches_the_whole_training_window() -> None:
    (split,) = plan(82, Validation(selection="in_sample")).splits
    assert (split.train, split.selection, split.test) == (range(0, 62), range(62, 62), range(62, 82))


def test_walk_forward_folds_are_anchored_and_expanding() -> None:
    p = plan(82, Validation(method="walk_forward"))
    assert p.method == "walk_forward" and len(p.splits) == 4
    tests = [s.test for s in p.splits]
    assert tests == [range(42, 52), range(52, 62), range(62, 72), range(72, 82)]
    for split in p.splits:
        assert split.train.start == 0 and split.selection.stop == split.test.start  # anchored at day 0
        assert len(split.train) >= 10 and len(split.selection) >= 10
    assert [len(s.train) for s in p.splits] == [32, 39, 46, 54]


def test_short_inputs_are_not_validated_and_say_why() -> None:
    p = plan(5, Validation())
    assert p.method == "none" and not p.validating
    assert p.final.train == range(0, 5) and not p.final.test
    assert "5 trading days are too few" in p.note and "VALIDATION.min_test_days" in p.note
    assert plan(82, Validation(method="none")).note == ""


def test_walk_forward_drops_folds_then_falls_back_to_a_holdout() -> None:
    fewer = plan(50, Validation(method="walk_forward"))
    assert fewer.method == "walk_forward" and len(fewer.splits) == 3 and "3 folds" in fewer.note
    holdout = plan(35, Validation(method="walk_forward"))
    assert holdout.method == "holdout" and "single holdout" in holdout.note


def _candidate(kind: str, members: tuple[int, ...], fitness: float) -> Candidate:
    return Candidate("x", kind, members, fitness)


def test_choice_by_sharpe_on_the_selection_window_ties_to_in_sample_fitness() -> None:
    pnl = np.array(
        [
            [1.0, 1.0, 5.0, 0.0, 9.0],
            [1.0, 1.0, -5.0, 0.0, 9.0],
            [2.0, 2.0, 0.0, 1.0, 50.0],  # selection window: days 2–4
            [3.0, 3.0, 0.0, 1.1, -20.0],
            [4.0, 4.0, 0.0, 1.2, 80.0],
        ]
    )
    split = Split(range(0, 2), range(2, 5), range(5, 5))
    candidates = [
        _candidate("best", (0,), 3.0),  # selection Sharpe 3
        _candidate("best", (1,), 7.0),  # the same Sharpe, higher in-sample fitness
        _candidate("best", (2,), 9.0),  # the highest in-sample fitness, selection Sharpe 0
        _candidate("built", (3,), -5.0),  # selection Sharpe 11: steadier than 0 and 1
        _candidate("archive", (4,), 1.0),  # the most money on the selection window, but erratic
    ]
    choice = choose(split, candidates[:3], pnl, "validated")
    assert (choice.chosen, choice.in_sample) == (1, 2)
    assert choose(split, candidates, pnl, "validated").chosen == 3
    assert choose(split, candidates, pnl, "in_sample").chosen == 2


def test_a_zero_fitness_outranks_a_negative_one() -> None:
    split = Split(range(0, 3), range(3, 3), range(3, 3))
    pnl = np.zeros((3, 2))
    for first, second in ((0.0, -3.0), (-3.0, 0.0)):
        choice = choose(split, [_candidate("best", (0,), first), _candidate("best", (1,), second)], pnl, "validated")
        assert choice.candidates[choice.chosen].fitness == 0.0


# ---- jobs on worlds whose future is known ------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 8, 11])
def test_on_a_hedged_world_the_validated_winner_holds_up_and_the_in_sample_one_does_not(
    tmp_path: Path, seed: int
) -> None:
    world = hedged_world(seed=seed)
    outcome = run_job(world.write(tmp_path / "hedged.csv"), config(tmp_path), out_dir=tmp_path / "out")
    report, v = outcome.report, outcome.report.validation
    assert v is not None and v.method == "holdout" and (v.train_days, v.test_days) == (46, 20)
    chosen, in_sample = report.winner, report.in_sample_winner
    assert in_sample is not None and in_sample.fitness > chosen.fitness  # the search's best fits noise
    future_chosen, future_in_sample = (
        sharpe(world.future(chosen.strategies)),
        sharpe(world.future(in_sample.strategies)),
    )
    assert future_chosen > future_in_sample + 3.0
    assert future_chosen > 5.0
    assert v.deflated_sharpe_probability is not None and v.deflated_sharpe_probability > 0.95
    assert v.probability_of_overfitting is not None and v.probability_of_overfitting < 0.2
    assert v.verdict == "evidence of skill"
    summary = json.loads((outcome.run_dir / "execution_summary.json").read_text())
    jsonschema.validate(summary, SCHEMA)
    assert all(r["test_sharpe"] is not None and r["selection_sharpe"] is not None for r in summary["results"])
    best_test = max(r["test_sharpe"] for r in summary["results"])
    assert v.folds[-1].chosen_test_metrics["sharpe_ratio"] > best_test  # no search result held up as well
    assert summary["winner"]["strategies"] == list(chosen.strategies)
    assert summary["in_sample_winner"]["strategies"] == list(in_sample.strategies)
    assert summary["validation"]["deflated_sharpe_probability"] == v.deflated_sharpe_probability


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_pure_noise_there_is_no_evidence_of_skill(tmp_path: Path, seed: int) -> None:
    world = noise_world(seed=seed)
    outcome = run_job(world.write(tmp_path / "noise.csv"), config(tmp_path), out_dir=tmp_path / "out")
    v = outcome.report.validation
    assert v is not None and v.deflated_sharpe_probability is not None
    assert outcome.report.in_sample_winner is not None
    assert outcome.report.in_sample_winner.metrics["sharpe_ratio"] > 8  # in sample, noise looks like skill
    assert v.deflated_sharpe_probability < 0.95
    assert v.verdict.startswith("no evidence of skill")
    text = (outcome.run_dir / "validation_report.md").read_text()
    assert "no evidence of skill" in text and "chance that the selection is overfit" in text


def test_a_strategy_that_only_pays_in_the_test_window_is_never_chosen(tmp_path: Path) -> None:
    world, planted = with_test_window_payer(noise_world(seed=4), test_days=20)
    name = world.names[planted]
    path = world.write(tmp_path / "leak.csv")
    validated = run_job(path, config(tmp_path), out_dir=tmp_path / "a").report
    assert validated.validation is not None and validated.validation.test_days == 20
    for portfolio in (validated.winner, validated.in_sample_winner):
        assert portfolio is not None and not {name, f"{name}_inv"} & set(portfolio.strategies)
    # The same file searched on every day (no validation) takes it: the test above can fail.
    in_sample = run_job(path, config(tmp_path, "VALIDATION.method=none"), out_dir=tmp_path / "b").report
    assert name in in_sample.winner.strategies


def test_ulta_flags_come_from_the_training_window(tmp_path: Path) -> None:
    world = noise_world(seed=5)
    pnl = world.pnl.copy()
    pnl[:46, 7] = -100.0  # loses on every training day ...
    pnl[46:, 7] = 5000.0  # ... and wins the selection and test windows: positive over the file, still inverted
    world = type(world)(pnl, world.days, world.structure)
    outcome = run_job(world.write(tmp_path / "ulta.csv"), config(tmp_path), out_dir=tmp_path / "out")
    assert outcome.report.validation is not None and outcome.report.validation.train_days == 46
    expected = ulta_mask(world.pnl[:46])
    assert expected[7] and world.pnl[: world.days, 7].sum() > 0
    inverted = {inv.name for inv in outcome.report.inversions}
    assert inverted == {n for n, m in zip(world.names, expected.tolist(), strict=True) if m}
    assert outcome.report.strategy_metrics is not None
    assert "S00007_inv" in outcome.report.strategy_metrics.names
    ulta = (outcome.run_dir / "ulta_inversion_report.md").read_text()
    assert "training window (the first 46 days" in ulta


def test_the_selection_window_is_not_tilted_by_ulta(tmp_path: Path) -> None:
    """ULTA decides on the training window only: had it seen the selection days, it would flip each
    noise strategy towards whatever it did there, and every candidate would look good on them."""
    world = noise_world(strategies=3000, seed=9)
    outcome = run_job(world.write(tmp_path / "tilt.csv"), config(tmp_path), out_dir=tmp_path / "out")
    inverted = {inv.name for inv in outcome.report.inversions}
    signs = np.array([-1.0 if name in inverted else 1.0 for name in world.names])
    selection = world.pnl[46:62]  # the job's selection window (train 46, selection 16, test 20)
    per_strategy = (selection * signs).sum(axis=0)
    standard_error = per_strategy.std() / np.sqrt(per_strategy.size)
    assert abs(per_strategy.mean()) < 3 * standard_error
    # The same figure had ULTA decided on training and selection days together: far from zero.
    tilted = np.where(ulta_mask(world.pnl[:62]), -1.0, 1.0)
    assert (selection * tilted).sum(axis=0).mean() > 10 * standard_error


def _without_measurements(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("created_at", "timings_s", "peak_rss_mb", "results")}


def test_the_same_job_twice_gives_identical_validation_figures(tmp_path: Path) -> None:
    path = hedged_world(seed=6).write(tmp_path / "twice.csv")
    runs = [
        run_job(path, config(tmp_path, "COMPUTE.workers=2"), out_dir=tmp_path / f"out{k}", job_id="twice")
        for k in range(2)
    ]
    first, second = (json.loads((r.run_dir / "execution_summary.json").read_text()) for r in runs)
    assert first["validation"] == second["validation"]
    assert _without_measurements(first) == _without_measurements(second)
    assert first["validation"]["bootstrap"]["intervals"]
    assert (runs[0].run_dir / "validation_report.md").read_text() == (
        runs[1].run_dir / "validation_report.md"
    ).read_text()


def test_walk_forward_reports_every_fold_and_how_stable_the_choice_is(tmp_path: Path) -> None:
    world = hedged_world(seed=7)
    outcome = run_job(
        world.write(tmp_path / "wf.csv"), config(tmp_path, "VALIDATION.method=walk_forward"), out_dir=tmp_path / "out"
    )
    v = outcome.report.validation
    assert v is not None and v.method == "walk_forward" and len(v.folds) == 4
    assert v.test_days == 40 and len(v.oos_daily) == 40 and len(v.oos_dates) == len(set(v.oos_dates))
    assert [f.windows[-1].days for f in v.folds] == [10, 10, 10, 10]
    assert {name for name, _ in v.stability} == set(outcome.report.winner.strategies)
    assert all(0 < share <= 1 for _, share in v.stability)
    assert sharpe(np.array(v.oos_daily)) > sharpe(np.array(v.in_sample_oos_daily))
    summary = json.loads((outcome.run_dir / "execution_summary.json").read_text())
    jsonschema.validate(summary, SCHEMA)
    assert len(summary["validation"]["folds"]) == 4 and summary["validation"]["stability"]
    assert "Walk-forward folds" in (outcome.run_dir / "validation_report.md").read_text()


def test_in_sample_selection_reports_the_in_sample_winner_and_measures_it(tmp_path: Path) -> None:
    world = hedged_world(seed=3)
    outcome = run_job(
        world.write(tmp_path / "is.csv"), config(tmp_path, "VALIDATION.selection=in_sample"), out_dir=tmp_path / "o"
    )
    report = outcome.report
    assert report.winner == report.in_sample_winner
    assert report.validation is not None and report.validation.oos_metrics is not None
    assert report.validation.folds[-1].chosen_selection_metrics is None


def test_a_file_too_short_to_validate_runs_in_sample_and_says_so(tmp_path: Path) -> None:
    world = noise_world(days=25, seed=8)
    outcome = run_job(world.write(tmp_path / "short.csv"), config(tmp_path), out_dir=tmp_path / "out")
    v = outcome.report.validation
    assert v is not None and v.method == "none" and "25 trading days are too few" in v.note
    summary = json.loads((outcome.run_dir / "execution_summary.json").read_text())
    jsonschema.validate(summary, SCHEMA)
    assert summary["validation"]["method"] == "none" and summary["validation"]["deflated_sharpe_probability"] is None
    assert "Not validated" in (outcome.run_dir / "validation_report.md").read_text()
    assert "Not validated" in (outcome.run_dir / "performance_report.txt").read_text()
