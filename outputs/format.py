"""Formatting shared by the text reports: numbers, Markdown escaping, the report header."""

from __future__ import annotations

from outputs.report import RunReport

METRIC_LABELS = (
    ("total_roi", "Total ROI"),
    ("max_drawdown", "Max drawdown"),
    ("ratio", "ROI / max drawdown"),
    ("win_percentage", "Win percentage (%)"),
    ("profit_factor", "Profit factor"),
    ("expectancy", "Expectancy"),
    ("sharpe_ratio", "Sharpe ratio"),
    ("sortino_ratio", "Sortino ratio"),
    ("calmar_ratio", "Calmar ratio"),
    ("annualized_return", "Annualized return"),
    ("var_95", "VaR 95% (daily loss)"),
    ("cvar_95", "CVaR 95% (daily loss)"),
    ("avg_correlation", "Average pairwise correlation"),
)


def money(value: float) -> str:
    return f"{value:,.2f}"


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:,.6g}"


_MARKDOWN_SPECIAL = "\\`*_[]<>|#!~"


def markdown_cell(text: str) -> str:
    """Text shown literally in Markdown (table cells, prose): punctuation escaped, ``&`` as an entity."""
    escaped = text.replace("&", "&amp;")
    return "".join(f"\\{ch}" if ch in _MARKDOWN_SPECIAL else ch for ch in escaped)


def markdown_code(text: str) -> str:
    """Text in a code span: shown as is; a backtick inside would end the span, so it becomes '."""
    return "`" + text.replace("`", "'") + "`"


def header(report: RunReport, title: str) -> list[str]:
    i = report.input
    return [
        f"# {title}",
        "",
        f"Job {markdown_code(report.job_id)} · input {markdown_code(i.file)} · {i.strategies:,} strategies × "
        f"{i.days} days ({i.first_date} – {i.last_date})",
        "",
    ]
