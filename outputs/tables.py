"""CSV files and the Excel workbook. CSV numbers are written in full (``repr``) precision."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import xlsxwriter

from outputs.format import METRIC_LABELS
from outputs.report import RunReport, StrategyMetrics

STRATEGY_COLUMNS = ("roi", "max_drawdown", "win_percentage", "profit_factor", "expectancy", "sharpe")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv(rows: list[list[Any]]) -> str:
    """CSV text, starting with a byte-order mark so Excel on Windows reads it as UTF-8."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def safe_name(name: str) -> str:
    """A strategy name as CSV text Excel will not run as a formula (``'`` prefix, OWASP's advice)."""
    return "'" + name if name.startswith(FORMULA_START) else name


def _metrics(report: RunReport) -> StrategyMetrics:
    if report.strategy_metrics is None:
        raise ValueError("the report has no per-strategy metrics")
    return report.strategy_metrics


def portfolio_composition(report: RunReport) -> str:
    """rank, strategy, weight, inverted, and the strategy's own metrics, one row per member."""
    table = _metrics(report)
    w = report.winner
    rows: list[list[Any]] = [["rank", "strategy", "weight", "inverted", *STRATEGY_COLUMNS]]
    for rank, (name, j) in enumerate(zip(w.strategies, w.members, strict=True), start=1):
        values = table.row(j)
        rows.append(
            [
                rank,
                safe_name(name),
                repr(1.0 / len(w.strategies)),
                bool(table.inverted[j]),
                *(repr(values[c]) for c in STRATEGY_COLUMNS),
            ]
        )
    return _csv(rows)


def strategy_metrics(report: RunReport) -> str:
    """The predecessor's ``strategy_metrics.csv``: every strategy searched, after ULTA."""
    table = _metrics(report)
    rows: list[list[Any]] = [["Strategy", "ROI", "Max Drawdown", "Win Percentage", "Profit Factor", "Expectancy"]]
    columns = [
        table.roi.tolist(),
        table.max_drawdown.tolist(),
        table.win_percentage.tolist(),
        table.profit_factor.tolist(),
        table.expectancy.tolist(),
    ]
    for j, name in enumerate(table.names):
        rows.append([safe_name(name), *(repr(col[j]) for col in columns)])
    return _csv(rows)


class _Book:
    """Formats shared by the workbook's sheets."""

    def __init__(self, path: Path) -> None:
        # Strategy names are text, never numbers, formulas or links: store them as written.
        options = {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "nan_inf_to_errors": True,  # never expected (inputs are finite), but a #NUM! beats a lost workbook
        }
        self.book = xlsxwriter.Workbook(str(path), options)
        self.header = self.book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
        self.money = self.book.add_format({"num_format": "#,##0.00"})
        self.ratio = self.book.add_format({"num_format": "0.0000"})
        self.general = self.book.add_format({"num_format": "General"})

    def table(
        self, name: str, headers: list[str], rows: list[list[Any]], formats: list[Any], widths: list[int]
    ) -> None:
        sheet = self.book.add_worksheet(name)
        sheet.freeze_panes(1, 0)
        for col, (width, fmt) in enumerate(zip(widths, formats, strict=True)):
            sheet.set_column(col, col, width, fmt)
        sheet.write_row(0, 0, headers, self.header)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row):
                if isinstance(value, str):
                    sheet.write_string(r, c, value)
                else:
                    sheet.write_number(r, c, value)
        sheet.autofilter(0, 0, max(len(rows), 1), len(headers) - 1)


def optimization_workbook(report: RunReport, path: Path) -> None:
    """``optimization_summary.xlsx``: summary, results, best portfolio, strategy metrics, why each member,
    ULTA, zones, validation."""
    book = _Book(path)
    _summary_sheet(book, report)
    _results_sheet(book, report)
    _portfolio_sheets(book, report)
    _contributions_sheet(book, report)
    _ulta_sheet(book, report)
    _zones_sheet(book, report)
    book.table(
        "Validation",
        ["Figure", "Chosen on validation", "Highest in-sample fitness"],
        _validation_rows(report),
        [None, book.general, book.general],
        [44, 40, 40],
    )
    book.book.close()


def _summary_sheet(book: _Book, report: RunReport) -> None:
    w, i = report.winner, report.input
    summary: list[list[Any]] = [
        ["Job", report.job_id],
        ["Input", i.file],
        ["Strategies", i.strategies],
        ["Days", i.days],
        ["First date", i.first_date],
        ["Last date", i.last_date],
        ["Metric", report.metric],
        ["Seed", report.seed],
        ["Inverted by ULTA", len(report.inversions)],
        ["Winner size", w.size],
        ["Winner algorithm", w.algorithm],
        ["Winner fitness", w.fitness],
        *([label, w.metrics[key]] for key, label in METRIC_LABELS),
    ]
    book.table("Summary", ["Item", "Value"], summary, [None, book.general], [30, 40])


def _results_sheet(book: _Book, report: RunReport) -> None:
    results = [
        [
            r.size,
            r.algorithm,
            r.status,
            _or_blank(r.fitness),
            _or_blank(r.selection_sharpe),
            _or_blank(r.test_sharpe),
            r.evaluations,
            r.seconds,
            r.error,
        ]
        for r in report.results
    ]
    book.table(
        "Results",
        [
            "Size",
            "Algorithm",
            "Status",
            "Fitness",
            "Sharpe, selection",
            "Sharpe, test",
            "Evaluations",
            "Seconds",
            "Error",
        ],
        results,
        [None, None, None, book.general, book.ratio, book.ratio, None, book.ratio, None],
        [8, 24, 9, 16, 12, 12, 12, 10, 40],
    )


def _portfolio_sheets(book: _Book, report: RunReport) -> None:
    """The winner's members and every strategy, with their own metrics."""
    w = report.winner
    table = _metrics(report)
    metric_headers = ["ROI", "Max drawdown", "Win %", "Profit factor", "Expectancy", "Sharpe"]
    metric_formats = [book.money, book.money, book.ratio, book.ratio, book.money, book.ratio]
    best = [
        [rank, name, 1.0 / len(w.strategies), "yes" if table.inverted[j] else "no", *table.row(j).values()]
        for rank, (name, j) in enumerate(zip(w.strategies, w.members, strict=True), start=1)
    ]
    book.table(
        "Best portfolio",
        ["Rank", "Strategy", "Weight", "Inverted", *metric_headers],
        best,
        [None, None, book.ratio, None, *metric_formats],
        [6, 44, 9, 9, 14, 14, 9, 12, 12, 9],
    )
    columns = [getattr(table, c).tolist() for c in STRATEGY_COLUMNS]
    strategy_rows = [
        [name, "yes" if inv else "no", *(col[j] for col in columns)]
        for j, (name, inv) in enumerate(zip(table.names, table.inverted.tolist(), strict=True))
    ]
    book.table(
        "Strategy metrics",
        ["Strategy", "Inverted", *metric_headers],
        strategy_rows,
        [None, None, *metric_formats],
        [44, 9, 14, 14, 9, 12, 12, 9],
    )


def _contributions_sheet(book: _Book, report: RunReport) -> None:
    """Why each member is in: the portfolio without it, and its best substitute."""
    rows = [
        [
            c.name,
            c.contribution,
            c.fitness_without,
            _or_blank(c.test_sharpe_without),
            c.substitute or "",
            _or_blank(c.substitute_fitness),
        ]
        for c in report.contributions
    ]
    book.table(
        "Why each member",
        [
            "Strategy",
            "Contribution",
            "Fitness without it",
            "Sharpe without it, test",
            "Best substitute",
            "Fitness with the substitute",
        ],
        rows,
        [None, book.general, book.general, book.ratio, None, book.general],
        [44, 16, 18, 20, 44, 22],
    )


def _ulta_sheet(book: _Book, report: RunReport) -> None:
    ordered = sorted(report.inversions, key=lambda inv: (inv.original_total, inv.name))  # as the Markdown report
    ulta = [
        [inv.name, inv.original_total, inv.inverted_total, inv.worst_day, inv.total_to_worst_day] for inv in ordered
    ]
    book.table(
        "ULTA",
        ["Strategy", "Original total", "Inverted total", "Worst day", "Total / |worst day|"],
        ulta,
        [None, book.money, book.money, book.money, book.ratio],
        [44, 16, 16, 14, 18],
    )


def _zones_sheet(book: _Book, report: RunReport) -> None:
    book.table(
        "Zones",
        [
            "Zone",
            "Rows",
            "Weight",
            "Zone best size",
            "Zone best algorithm",
            "Zone best fitness",
            "Zone best ROI",
            "Winner ROI",
            "Winner max drawdown",
            "Winner win %",
            "Winner sharpe",
            "Zone best strategies",
        ],
        _zone_rows(report),
        [
            None,
            None,
            book.ratio,
            None,
            None,
            book.general,
            book.money,
            book.money,
            book.money,
            book.ratio,
            book.ratio,
            None,
        ],
        [24, 8, 9, 10, 22, 16, 14, 14, 18, 12, 12, 80],
    )


def _or_blank(value: float | None) -> float | str:
    return "" if value is None else value


def _validation_rows(report: RunReport) -> list[list[Any]]:
    """Both portfolios in sample and out of sample, then the statistics of the choice."""
    v = report.validation
    if v is None or not v.ran or v.oos_metrics is None:
        why = v.note if v is not None and v.note else "VALIDATION.method = none"
        return [["Not validated", why, "every figure in this workbook is in sample"]]
    chosen, other = report.winner, report.in_sample_winner or report.winner
    labels = dict(METRIC_LABELS)
    rows: list[list[Any]] = [
        ["Found by", f"{chosen.algorithm}, size {chosen.size}", f"{other.algorithm}, size {other.size}"],
        ["In-sample fitness", chosen.fitness, other.fitness],
    ]
    for key, label in labels.items():
        if key in v.oos_metrics:
            rows.append([f"{label}, in sample", chosen.metrics[key], other.metrics[key]])
            rows.append([f"{label}, out of sample", v.oos_metrics[key], (v.in_sample_oos_metrics or {}).get(key, "")])
    rows += [
        ["Verdict", v.verdict, ""],
        ["Method / selection", f"{v.method} / {v.selection}", ""],
        ["Training days / out-of-sample days", f"{v.train_days} / {v.test_days}", ""],
        ["Deflated Sharpe probability", v.deflated_sharpe_probability or 0.0, ""],
        ["Probability of backtest overfitting", "" if v.pbo is None else v.pbo["pbo"], ""],
        ["P(Sharpe > 0), out of sample alone", v.oos_sharpe_probability or 0.0, ""],
    ]
    for name, (low, high) in (v.bootstrap or {}).items():
        rows.append([f"{name.replace('_', ' ')}, bootstrap 95 % interval", low, high])
    return rows


def _zone_rows(report: RunReport) -> list[list[Any]]:
    """One row per zone: its own best (zone mode) and the overall winner's figures in it."""
    if report.zone_breakdown is None:
        return [["(no Zone column in the input)", *[""] * 11]]
    own = {run.zone: run for run in report.zone_runs or ()}
    rows: list[list[Any]] = []
    for z in report.zone_breakdown:
        run = own.get(z.zone)
        best: list[Any] = (
            [run.weight, run.winner.size, run.winner.algorithm, run.winner.fitness, run.winner.metrics["total_roi"]]
            if run
            else ["", "", "(zone mode off)", "", ""]
        )
        m = z.metrics
        strategies = ", ".join(run.winner.strategies) if run else ""
        rows.append(
            [
                z.zone,
                z.days,
                *best,
                m["total_roi"],
                m["max_drawdown"],
                m["win_percentage"],
                m["sharpe_ratio"],
                strategies,
            ]
        )
    return rows
