"""``report.html``: the run on one page a double-click opens from the share.

Self-contained: the styles are inline and the charts are the run folder's own PNGs embedded as
``data:`` URIs, so the page makes no request (it opens the same on a desk with no network and
from a copy of the folder). Every text from the input (strategy and zone names, the file name)
is HTML-escaped. The other files are linked by relative name, next to the page.
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

from outputs import validation
from outputs.format import METRIC_LABELS, number
from outputs.report import LOOKBACK, RunReport

CHARTS = (
    ("equity_curves.png", "Equity curves of the best portfolio of each size"),
    ("validation_equity.png", "The chosen portfolio on the days the search never saw"),
    ("algorithm_comparison.png", "The algorithms compared"),
    ("zone_equity_curves.png", "Zones"),
)
LINKED = (
    ("performance_report.txt", "the full performance report"),
    ("validation_report.md", "the validation report"),
    ("optimization_summary.xlsx", "the workbook (every size, every portfolio)"),
    ("portfolio_composition.csv", "the winner's strategies"),
    ("strategy_metrics.csv", "every strategy's own metrics"),
    ("ulta_inversion_report.md", "the strategies ULTA inverted"),
    ("zone_analysis_report.md", "the zone analysis"),
    ("execution_summary.json", "everything, machine-readable"),
    ("error_log.txt", "output errors, if any"),
)
STYLE = """
body{font:15px/1.45 -apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1d2733;background:#f4f6f8;margin:0}
main{max-width:1120px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5dbe1}
.meta{color:#5a6978;font-size:13px}
.headline{background:#fff;border-left:6px solid #2f6fb2;padding:14px 18px;margin:16px 0;font-size:17px}
.headline.warn{border-left-color:#c0392b}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-size:14px}
th,td{border:1px solid #d5dbe1;padding:4px 10px;text-align:right;white-space:nowrap}
th{background:#e9eef3}td.l,th.l{text-align:left}td.l{white-space:normal;min-width:12em}
figure{margin:12px 0;background:#fff;border:1px solid #d5dbe1;padding:8px}
figure img{max-width:100%;height:auto;display:block}
figcaption{color:#5a6978;font-size:13px}
ol.members{columns:3 260px;background:#fff;border:1px solid #d5dbe1;padding:10px 10px 10px 40px}
a{color:#2f6fb2}
"""


def report_page(report: RunReport, folder: Path) -> str:
    """The page for ``report``, with the charts found in ``folder`` (the run folder being written)."""
    i, w = report.input, report.winner
    title = f"Heavy Optimizer — {i.file}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No request of any kind: everything is in this file.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">",
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="meta">Job {escape(report.job_id)} · {i.strategies:,} strategies × {i.days} days '
        f"({escape(i.first_date)} – {escape(i.last_date)}) · created {escape(report.created_at)} · "
        f"Heavy Optimizer {escape(report.version)}</div>",
        *_where(report, folder),
        *_headline(report),
        *_winner(report),
        *_since_last_run(report),
        *_contributions(report),
        *_charts(folder),
        *_sizes(report),
        *_ulta(report),
        *_zones(report),
        "<h2>The strategies of the winner</h2>",
        '<ol class="members">',
        *(f"<li>{escape(name)}</li>" for name in w.strategies),
        "</ol>",
        *_links(folder),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _where(report: RunReport, folder: Path) -> list[str]:
    """The run folder as Windows users reach it (``QUEUE.unc_root``): the page is written in the
    hidden ``.run_….partial-…`` folder that is renamed to ``run_…`` when every file is written."""
    if not report.windows_output_dir:
        return []
    final = re.sub(r"^\.(run_.+)\.partial-[A-Za-z0-9-]+-\d+$", r"\1", folder.name)
    path = report.windows_output_dir.rstrip("\\") + "\\" + final
    return [f'<div class="meta">Folder: <code>{escape(path)}</code></div>']


def _headline(report: RunReport) -> list[str]:
    w, v = report.winner, report.validation
    validated = v is not None and v.ran and v.oos_metrics is not None
    how = "."
    if validated and v is not None:
        how = (
            " (chosen on days the search never saw)."
            if v.selection == "validated"
            else " (chosen in sample, then measured on days the search never saw)."
        )
    answer = f"Trade the {w.size}-strategy portfolio found by {escape(w.algorithm)}{how}"
    warn = not validated or "no evidence" in (v.verdict if v else "").lower()
    lines = [f'<div class="headline{" warn" if warn else ""}"><b>{answer}</b><br>{escape(validation.headline(report))}']
    if v is not None and v.verdict:
        lines.append(f"<br>{escape(v.verdict)}")
    lines.append("</div>")
    for what, why in report.fallbacks.items():
        lines.append(f'<div class="meta">Fell back ({escape(what)}): {escape(why)}</div>')
    return lines


def _winner(report: RunReport) -> list[str]:
    w, v = report.winner, report.validation
    oos = v.oos_metrics if v is not None and v.ran else None
    cards = [
        ("Size", f"{w.size}"),
        ("Algorithm", escape(w.algorithm)),
        (f"Fitness ({escape(report.metric)})", number(w.fitness)),
        ("Sharpe in sample", number(w.metrics.get("sharpe_ratio"))),
    ]
    if oos is not None:
        cards.append(("Sharpe out of sample", number(oos.get("sharpe_ratio"))))
    rows = [
        f'<tr><td class="l">{label}</td><td>{number(w.metrics.get(key))}</td>'
        + (f"<td>{number(oos.get(key))}</td>" if oos is not None else "")
        + "</tr>"
        for key, label in METRIC_LABELS
        if key in w.metrics
    ]
    head = '<tr><th class="l">metric</th><th>in sample</th>' + ("<th>out of sample</th>" if oos else "") + "</tr>"
    return [
        "<h2>The winner</h2>",
        '<div class="cards">',
        *(f'<div class="card">{label}<b>{value}</b></div>' for label, value in cards),
        "</div>",
        f'<div class="scroll"><table>{head}',
        *rows,
        "</table></div>",
    ]


def _charts(folder: Path) -> list[str]:
    figures = []
    for name, caption in CHARTS:
        path = folder / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            figures.append(
                f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{escape(caption)} ({name})</figcaption></figure>"
            )
    return ["<h2>Charts</h2>", *figures] if figures else []


def _since_last_run(report: RunReport) -> list[str]:
    change = report.since_last_run
    if change is None:
        return [
            "<h2>Since the last run</h2>",
            f"<p>No earlier run of {escape(report.book)} found among the latest {LOOKBACK} run folders here.</p>",
        ]
    rows = [
        f'<tr><td class="l">{escape(name)}</td><td>{number(before)}</td><td>{number(now)}</td>'
        f"<td>{number(None if before is None or now is None else now - before)}</td></tr>"
        for name, before, now in change.figures
    ]

    def names(items: tuple[str, ...]) -> str:
        return ", ".join(escape(n) for n in items) if items else "none"

    # On the share the run folders are neighbours; through the API (pages by job id) this link does not resolve.
    link = f', <a href="../{escape(change.previous_run_folder)}/report.html">its page</a>' if change.has_page else ""
    return [
        f"<h2>Since the last run of {escape(change.book)}</h2>",
        f"<p>Compared with job {escape(change.previous_job_id)} ({escape(change.previous_created_at)}, folder "
        f"<code>{escape(change.previous_run_folder)}</code>{link}): {change.kept} strategies kept, "
        f"{len(change.came_in)} came in, {len(change.went_out)} went out.</p>",
        f"<p><b>Came in:</b> {names(change.came_in)}</p>",
        f"<p><b>Went out:</b> {names(change.went_out)}</p>",
        *([f"<p><b>Kept, now traded the other way (ULTA):</b> {names(change.flipped)}</p>"] if change.flipped else []),
        '<div class="scroll"><table><tr><th class="l">figure</th><th>before</th><th>now</th><th>change</th></tr>',
        *rows,
        "</table></div>",
    ]


def _contributions(report: RunReport) -> list[str]:
    if not report.contributions:
        return []
    validated = any(c.test_sharpe_without is not None for c in report.contributions)
    rows = [
        f'<tr><td class="l">{escape(c.name)}</td><td>{number(c.contribution)}</td><td>{number(c.fitness_without)}</td>'
        + (f"<td>{number(c.test_sharpe_without)}</td>" if validated else "")
        + f'<td class="l">{escape(c.substitute or "—")}</td><td>{number(c.substitute_fitness)}</td></tr>'
        for c in sorted(report.contributions, key=lambda c: -c.contribution)
    ]
    test = "<th>Sharpe of the others, final test window</th>" if validated else ""
    return [
        "<h2>Why each strategy is in</h2>",
        f"<p>The winner's fitness on the days the search saw is {number(report.winner.fitness)}. For each member: "
        "what the portfolio loses without it, and the strategy that would score best in its place. A negative "
        "contribution: the others score higher without it on those days (a validated winner is chosen on "
        "days the search never saw, not on this fitness).</p>",
        '<div class="scroll"><table><tr><th class="l">strategy</th><th>contribution</th><th>fitness without it</th>'
        f'{test}<th class="l">best substitute</th><th>fitness with it</th></tr>',
        *rows,
        "</table></div>",
    ]


def _sizes(report: RunReport) -> list[str]:
    best = report.best_by_size()
    rows = [
        f'<tr><td>{size}</td><td class="l">{escape(r.algorithm)}</td><td>{number(r.fitness)}</td>'
        f"<td>{number(r.test_sharpe)}</td></tr>"
        for size, r in sorted(best.items())
    ]
    return [
        "<h2>Best of each size (in sample)</h2>",
        '<div class="scroll"><table><tr><th>size</th><th class="l">algorithm</th><th>fitness</th>'
        "<th>Sharpe on the test days</th></tr>",
        *rows,
        "</table></div>",
    ]


def _ulta(report: RunReport) -> list[str]:
    if not report.ulta_enabled:
        return ["<h2>ULTA</h2>", "<p>Off: no strategy was inverted.</p>"]
    worst = sorted(report.inversions, key=lambda inv: inv.original_total)[:10]
    rows = [
        f'<tr><td class="l">{escape(inv.name)}</td><td>{number(inv.original_total)}</td>'
        f"<td>{number(inv.inverted_total)}</td></tr>"
        for inv in worst
    ]
    lines = [
        "<h2>ULTA</h2>",
        f"<p>{len(report.inversions):,} of {report.input.strategies:,} strategies lost money on the days that "
        "decide and were inverted (traded the other way).</p>",
    ]
    if rows:
        lines += [
            '<div class="scroll"><table><tr><th class="l">the biggest losers, inverted</th><th>total before</th>'
            "<th>total inverted</th></tr>",
            *rows,
            "</table></div>",
        ]
    return lines


def _zones(report: RunReport) -> list[str]:
    if report.zone_runs is None:
        return []
    rows = [
        f'<tr><td class="l">{escape(run.zone)}</td><td>{run.weight:.4f}</td><td>{run.days}</td>'
        f'<td>{run.winner.size}</td><td class="l">{escape(run.winner.algorithm)}</td>'
        f"<td>{number(run.winner.fitness)}</td></tr>"
        for run in report.zone_runs
    ]
    return [
        "<h2>Zones</h2>",
        '<div class="scroll"><table><tr><th class="l">zone</th><th>weight</th><th>days</th><th>size</th>'
        '<th class="l">algorithm</th><th>fitness</th></tr>',
        *rows,
        "</table></div>",
    ]


def _links(folder: Path) -> list[str]:
    items = [
        f'<li><a href="{name}">{name}</a>: {escape(what)}</li>'
        for name, what in LINKED
        if (folder / name).exists() or name == "error_log.txt"
    ]
    return ["<h2>The other files of this run</h2>", "<ul>", *items, "</ul>"]
