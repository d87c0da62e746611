"""What the validation found, in words and as data: ``validation_report.md``, the JSON block, report lines.

Plain words first: in sample X, out of sample Y, the chance that the selection is overfit.
Every Sharpe ratio shown to people is annualised; the statistics' own inputs are per day.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from outputs.format import METRIC_LABELS, header, markdown_cell, markdown_code, money, number
from outputs.report import Fold, RunReport, ValidationReport, Winner

TEST_COLUMNS = ("total_roi", "max_drawdown", "ratio", "sharpe_ratio", "win_percentage")


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _believe(in_sample: float, out_of_sample: float) -> str:
    """How much of the in-sample Sharpe ratio held out of sample, in words."""
    if in_sample <= 0:
        return "the in-sample Sharpe ratio was not positive, so there is nothing to believe"
    kept = out_of_sample / in_sample
    if kept <= 0:
        return "none of it held: out of sample the portfolio lost money on a risk-adjusted basis"
    return f"about {min(kept, 1.0):.0%} of it held" + (" (more than all of it)" if kept > 1 else "")


def headline(report: RunReport) -> str:
    """One sentence: in sample X, out of sample Y, chance that the selection is overfit Z %."""
    v = report.validation
    if v is None or not v.ran or v.oos_metrics is None:
        return "Not validated: every figure is in sample."
    in_sample = report.winner.metrics["sharpe_ratio"]
    oos = v.oos_metrics["sharpe_ratio"]
    return (
        f"In sample Sharpe {in_sample:,.2f}, out of sample {oos:,.2f}, "
        f"chance that the selection is overfit {_share(v.probability_of_overfitting)}."
    )


def _windows(fold: Fold) -> str:
    return "; ".join(f"{w.name} {w.first_date} – {w.last_date} ({w.days} days)" for w in fold.windows)


def _not_run(report: RunReport, v: ValidationReport | None) -> str:
    lines = header(report, "Validation report")
    why = v.note if v is not None and v.note else "`VALIDATION.method = none`"
    lines += [
        f"**Not validated** — {why}.",
        "",
        "Every figure in this run folder is in sample: the search saw every day it is measured on. With tens of "
        "thousands of strategies and a few months of days a search can always find a portfolio that looks "
        "excellent in the past, so none of these figures says how the portfolio will do next. Give the job more "
        "days (or lower `VALIDATION.min_test_days`) to validate it.",
        "",
    ]
    return "\n".join(lines)


def validation_report(report: RunReport) -> str:
    """``validation_report.md``.

    The findings in words, the two portfolios, the statistics, the folds and the candidates; the
    not-validated page (:func:`_not_run`) when validation did not run or a statistic is missing.
    """
    v = report.validation
    if (
        v is None
        or not v.ran
        or v.oos_metrics is None
        or v.in_sample_oos_metrics is None
        or v.oos_sharpe_probability is None
        or v.deflated is None
    ):
        return _not_run(report, v)
    lines = header(report, "Validation report")
    lines += [
        *_findings(report, v, v.oos_metrics, v.in_sample_oos_metrics, v.deflated),
        *_two_portfolios(report, v),
        *_statistics(v),
        *_folds(v),
        *_stability(v),
        *_candidates(v),
        "Formulas, references and the selection rule: docs/validation.md.",
        "",
    ]
    return "\n".join(lines)


def _findings(
    report: RunReport,
    v: ValidationReport,
    oos: dict[str, float],
    in_sample_oos: dict[str, float],
    deflated: dict[str, float],
) -> list[str]:
    """The headline, the verdict and what each figure means, in words.

    ``oos``, ``in_sample_oos`` and ``deflated`` are ``v``'s out-of-sample metrics of the two portfolios
    and its deflated Sharpe ratio, known to be there.
    """
    chosen, in_sample = report.winner, report.in_sample_winner or report.winner
    return [
        f"**{headline(report)}**",
        "",
        f"**Verdict: {v.verdict}.**",
        "",
        f"- Method: {v.method.replace('_', '-')}"
        + (f" over {len(v.folds)} folds" if len(v.folds) > 1 else "")
        + f"; the headline portfolio was chosen {_chosen_how(v)}.",
        f"- Windows of the last fold: {_windows(v.folds[-1])}. ULTA, correlation and the search saw only the "
        "training days; the candidates were compared on the selection days; nothing that chose saw the test days.",
        f"- Of the in-sample Sharpe ratio {chosen.metrics['sharpe_ratio']:,.2f}, "
        f"{_believe(chosen.metrics['sharpe_ratio'], oos['sharpe_ratio'])}. The portfolio with the "
        f"highest in-sample fitness ({number(in_sample.fitness)}) had an in-sample Sharpe ratio of "
        f"{in_sample.metrics['sharpe_ratio']:,.2f} and {in_sample_oos['sharpe_ratio']:,.2f} out of "
        "sample.",
        f"- Deflated Sharpe probability {deflated['probability']:.3f}: the probability that the chosen portfolio's "
        f"true Sharpe ratio is above zero, once choosing the best of {int(deflated['trials']):,} candidates "
        f"({deflated['effective_trials']:,.1f} independent) is accounted for.",
        f"- Probability of backtest overfitting {_share(v.probability_of_overfitting)}: how often the candidate "
        "that looked best on half of the unseen days was below the median on the other half.",
        f"- Out of sample alone (no deflation), the probability that the true Sharpe ratio is above zero is "
        f"{v.oos_sharpe_probability:.3f}.",
        "",
    ]


def _two_portfolios(report: RunReport, v: ValidationReport) -> list[str]:
    """The chosen portfolio beside the highest in-sample fitness.

    In sample, on the last fold's selection window (when measured there) and out of sample.
    """
    chosen, in_sample = report.winner, report.in_sample_winner or report.winner
    last = v.folds[-1]
    return [
        "## The two portfolios",
        "",
        "| | chosen on validation | highest in-sample fitness |",
        "|---|---|---|",
        f"| found by | {markdown_cell(chosen.algorithm)}, size {chosen.size} | "
        f"{markdown_cell(in_sample.algorithm)}, size {in_sample.size} |",
        f"| in-sample fitness | {number(chosen.fitness)} | {number(in_sample.fitness)} |",
        *_compare_rows("in sample", chosen.metrics, in_sample.metrics),
        *(
            _compare_rows("selection window", last.chosen_selection_metrics, None)
            if last.chosen_selection_metrics
            else []
        ),
        *_compare_rows("out of sample", v.oos_metrics, v.in_sample_oos_metrics),
        "",
    ]


def _candidates(v: ValidationReport) -> list[str]:
    """How many candidates of each source the last fold compared."""
    return [
        "## Candidates compared (last fold)",
        "",
        "| source | candidates |",
        "|---|---:|",
        *(f"| {markdown_cell(source)} | {count:,} |" for source, count in v.candidate_sources),
        "",
    ]


def _chosen_how(v: ValidationReport) -> str:
    if v.selection == "in_sample":
        return "by its in-sample fitness (`VALIDATION.selection = in_sample`); validation only measures it"
    return "by its Sharpe ratio on the selection window, among every candidate"


def _compare_rows(window: str, chosen: dict[str, float] | None, other: dict[str, float] | None) -> list[str]:
    labels = dict(METRIC_LABELS)
    rows = []
    for key in TEST_COLUMNS:
        left = number(chosen[key]) if chosen else "—"
        right = number(other[key]) if other else "—"
        rows.append(f"| {labels[key]}, {window} | {left} | {right} |")
    return rows


def _statistics(v: ValidationReport) -> list[str]:
    d = v.deflated or {}
    lines = [
        "## Statistics",
        "",
        "| statistic | value |",
        "|---|---:|",
        f"| deflated Sharpe probability | {d['probability']:.4f} |",
        f"| Sharpe ratio on the unseen days (per day) | {d['sharpe']:.4f} |",
        f"| expected best Sharpe of the candidates without skill (per day) | {d['benchmark']:.4f} |",
        f"| unseen days | {int(d['observations'])} |",
        f"| candidates / independent candidates | {int(d['trials']):,} / {d['effective_trials']:,.1f} |",
        f"| average correlation of the candidates | {d['average_correlation']:.3f} |",
        f"| variance of the candidates' Sharpe ratios (robust, per day²) | {d['trial_variance']:.6f} |",
        f"| skewness / kurtosis of the chosen portfolio | {d['skewness']:.3f} / {d['kurtosis']:.3f} |",
    ]
    if v.pbo is not None:
        lines += [
            f"| probability of backtest overfitting (CSCV) | {v.pbo['pbo']:.4f} |",
            f"| CSCV blocks / splits / median logit | {int(v.pbo['blocks'])} / {int(v.pbo['splits'])} / "
            f"{v.pbo['median_logit']:.3f} |",
        ]
    else:
        lines.append("| probability of backtest overfitting (CSCV) | — (too few unseen days) |")
    if v.bootstrap and v.bootstrap_settings:
        s = v.bootstrap_settings
        lines += [
            "",
            f"Stationary-bootstrap {s['confidence']:.0%} intervals on the {v.test_days} out-of-sample days "
            f"({int(s['samples']):,} resamples, mean block {s['mean_block_days']:g} days):",
            "",
            "| figure | low | high |",
            "|---|---:|---:|",
            *(
                f"| {name.replace('_', ' ')} | {number(low)} | {number(high)} |"
                for name, (low, high) in v.bootstrap.items()
            ),
        ]
    return [*lines, ""]


def _folds(v: ValidationReport) -> list[str]:
    if len(v.folds) < 2:
        return []
    lines = [
        "## Walk-forward folds",
        "",
        "| fold | test days | chosen | test Sharpe | test ROI | in-sample pick | its test Sharpe |",
        "|---:|---|---|---:|---:|---|---:|",
    ]
    for f in v.folds:
        test = next(w for w in f.windows if w.name == "test")
        lines.append(
            f"| {f.number} | {test.first_date} – {test.last_date} | {markdown_cell(f.chosen.algorithm)}, "
            f"size {f.chosen.size} | {number(f.chosen_test_metrics['sharpe_ratio'])} | "
            f"{money(f.chosen_test_metrics['total_roi'])} | {markdown_cell(f.in_sample.algorithm)}, size "
            f"{f.in_sample.size} | {number(f.in_sample_test_metrics['sharpe_ratio'])} |"
        )
    return [*lines, ""]


def _stability(v: ValidationReport) -> list[str]:
    if not v.stability:
        return []
    lines = [
        "## How often each chosen strategy was chosen across folds",
        "",
        "| strategy | share of folds |",
        "|---|---:|",
    ]
    lines += [f"| {markdown_code(name)} | {share:.0%} |" for name, share in v.stability]
    return [*lines, ""]


def training_window(report: RunReport) -> tuple[int, str] | None:
    """(days, last date) of the window ULTA decided on, when validation ran."""
    v = report.validation
    if v is None or not v.ran or not v.folds:
        return None
    training = next(w for w in v.folds[-1].windows if w.name == "training")
    return training.days, training.last_date


def report_lines(report: RunReport) -> list[str]:
    """The VALIDATION section of ``performance_report.txt``."""
    v = report.validation
    if v is None or not v.ran or v.oos_metrics is None:
        why = v.note if v is not None and v.note else "VALIDATION.method = none"
        return ["VALIDATION", f"Not validated ({why}): every figure above is in sample."]
    w = report.in_sample_winner
    lines = [
        "VALIDATION",
        headline(report),
        f"Verdict:               {v.verdict}",
        f"Method:                {v.method}, selection {v.selection}, {v.train_days} training days, "
        f"{v.test_days} out-of-sample days",
        f"Deflated Sharpe prob.: {v.deflated_sharpe_probability:.4f}" if v.deflated else "",
        f"Overfitting (PBO):     {_share(v.probability_of_overfitting)}",
    ]
    if w is not None and v.in_sample_oos_metrics is not None:
        lines.append(
            f"Highest in-sample fitness: size {w.size}, {w.algorithm}; Sharpe in sample "
            f"{w.metrics['sharpe_ratio']:,.2f}, out of sample {v.in_sample_oos_metrics['sharpe_ratio']:,.2f}"
        )
    return [line for line in lines if line]


def _winner_summary(winner: Winner) -> dict[str, Any]:
    return {
        "size": winner.size,
        "algorithm": winner.algorithm,
        "fitness": winner.fitness,
        "strategies": list(winner.strategies),
    }


def validation_summary(report: RunReport) -> dict[str, Any]:
    """The short form for the job's result file on the share and ``GET /jobs/{id}``."""
    v = report.validation
    if v is None:
        return {"method": "none"}
    return {
        "method": v.method,
        "selection": v.selection,
        "note": v.note,
        "headline": headline(report),
        "verdict": v.verdict,
        "train_days": v.train_days,
        "test_days": v.test_days,
        "deflated_sharpe_probability": v.deflated_sharpe_probability,
        "pbo": v.probability_of_overfitting,
        "oos_sharpe_probability": v.oos_sharpe_probability,
        "out_of_sample": None
        if v.oos_metrics is None
        else {"winner": v.oos_metrics, "in_sample_winner": v.in_sample_oos_metrics},
    }


def validation_json(v: ValidationReport) -> dict[str, Any]:
    """The ``validation`` block of ``execution_summary.json`` (docs/execution_summary.md)."""
    last = v.folds[-1] if v.folds else None
    return {
        "method": v.method,
        "selection": v.selection,
        "note": v.note,
        "train_days": v.train_days,
        "test_days": v.test_days,
        "windows": [asdict(w) for w in last.windows] if last else [],
        "candidates": last.candidates if last else 0,
        "candidate_sources": dict(v.candidate_sources),
        "out_of_sample": None
        if v.oos_metrics is None
        else {"winner": v.oos_metrics, "in_sample_winner": v.in_sample_oos_metrics},
        "selection_window": None if last is None else last.chosen_selection_metrics,
        "oos_sharpe_probability": v.oos_sharpe_probability,
        "deflated_sharpe_probability": v.deflated_sharpe_probability,
        "deflated_sharpe": v.deflated,
        "pbo": v.probability_of_overfitting,
        "pbo_detail": None if v.pbo is None else {k: x for k, x in v.pbo.items() if k != "pbo"},
        "bootstrap": None
        if v.bootstrap is None
        else {**(v.bootstrap_settings or {}), "intervals": {k: list(x) for k, x in v.bootstrap.items()}},
        "folds": [
            {
                "number": f.number,
                "windows": [asdict(w) for w in f.windows],
                "inverted": f.inverted,
                "candidates": f.candidates,
                "chosen": _winner_summary(f.chosen),
                "chosen_selection_metrics": f.chosen_selection_metrics,
                "chosen_test_metrics": f.chosen_test_metrics,
                "in_sample": _winner_summary(f.in_sample),
                "in_sample_test_metrics": f.in_sample_test_metrics,
            }
            for f in v.folds
        ],
        "stability": [{"strategy": name, "share": share} for name, share in v.stability],
        "oos": {"dates": list(v.oos_dates), "daily": list(v.oos_daily), "in_sample_daily": list(v.in_sample_oos_daily)},
        "verdict": v.verdict,
    }
