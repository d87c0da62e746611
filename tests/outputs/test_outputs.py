"""Every output file read back with its own reader, compared with the report (brief §5)."""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import openpyxl
import pytest
from PIL import Image

from algorithms.fitness import Objective
from algorithms.reference import reference_fitness
from optimizer import history
from optimizer.config import load_config
from optimizer.loader import load_csv
from optimizer.pipeline import JobOutcome, run_job
from optimizer.synthetic import write_csv
from outputs import validation as outputs_validation
from outputs.format import number
from outputs.text import MEASUREMENTS_MARKER
from tests.browser import chromium, headless

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots kept for a person to look at (ignored by git)
SCHEMA = json.loads((ROOT / "docs" / "execution_summary.schema.json").read_text())
SETS = ["PORTFOLIO.min_size=5", "PORTFOLIO.max_size=7", "OPTIMIZATION.evaluation_budget=300", "COMPUTE.workers=1"]
EIGHT = (
    "ulta_inversion_report.md",
    "zone_analysis_report.md",
    "performance_report.txt",
    "portfolio_composition.csv",
    "optimization_summary.xlsx",
    "execution_summary.json",
    "equity_curves.png",
    "algorithm_comparison.png",
)
VALIDATION = ("validation_report.md", "validation_equity.png")
PREDECESSOR = ("strategy_metrics.csv", "optimization_summary.txt", "error_log.txt")
PAGE = ("report.html",)


def job(tmp: Path, source: Path, out: str, *extra: str, job_id: str | None = None) -> JobOutcome:
    cfg = load_config(environ={}, overrides=[*SETS, f"DATABASE.data_dir={tmp / 'data'}", *extra])
    return run_job(source, cfg, out_dir=tmp / out, job_id=job_id)


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> JobOutcome:
    tmp = tmp_path_factory.mktemp("outputs")
    return job(tmp, write_csv(tmp / "in.csv", 300, 40, seed=5), "out")


def test_every_file_is_there(done: JobOutcome) -> None:
    names = {p.name for p in done.run_dir.iterdir()}
    best = {f"best_portfolio_size{n}.txt" for n in (5, 6, 7)}
    assert set(EIGHT) | set(VALIDATION) | set(PREDECESSOR) | set(PAGE) | best == names
    assert (done.run_dir / "error_log.txt").read_text().startswith("No errors")


def test_json_matches_its_schema_and_the_report(done: JobOutcome) -> None:
    summary = json.loads((done.run_dir / "execution_summary.json").read_text())
    jsonschema.validate(summary, SCHEMA, format_checker=jsonschema.FormatChecker())
    w = done.report.winner
    assert (summary["winner"]["size"], summary["winner"]["fitness"], summary["winner"]["strategies"]) == (
        w.size,
        w.fitness,
        list(w.strategies),
    )
    assert summary["ulta"]["inverted"] == len(done.report.inversions)
    assert len(summary["results"]) == len(done.report.results) == 3 * 8
    other, v = done.report.in_sample_winner, done.report.validation
    assert other is not None and v is not None
    assert summary["in_sample_winner"]["strategies"] == list(other.strategies)
    block = summary["validation"]
    assert (block["method"], block["train_days"], block["test_days"]) == ("holdout", 20, 10)
    assert block["deflated_sharpe_probability"] == v.deflated_sharpe_probability
    assert block["pbo"] == v.probability_of_overfitting
    assert block["out_of_sample"]["winner"] == v.oos_metrics
    assert len(block["oos"]["daily"]) == len(block["oos"]["dates"]) == 10


def test_workbook_sheets_values_and_layout(done: JobOutcome) -> None:
    book = openpyxl.load_workbook(done.run_dir / "optimization_summary.xlsx", read_only=False)
    assert book.sheetnames == [
        "Summary",
        "Results",
        "Best portfolio",
        "Strategy metrics",
        "Why each member",
        "ULTA",
        "Zones",
        "Validation",
    ]
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        assert sheet.auto_filter.ref, sheet.title
        assert sheet.cell(1, 1).font.bold
    # XlsxWriter stores 16 significant digits (Excel shows 15): compare to that precision.
    exact = pytest.approx
    results = list(book["Results"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[1]) for r in results] == [(r.size, r.algorithm) for r in done.report.results]
    assert [r[3] for r in results] == exact([r.fitness for r in done.report.results], rel=1e-15)
    best = list(book["Best portfolio"].iter_rows(min_row=2, values_only=True))
    assert [row[1] for row in best] == list(done.report.winner.strategies)
    assert sum(row[2] for row in best) == pytest.approx(1.0)
    table = done.report.strategy_metrics
    assert table is not None
    metrics = list(book["Strategy metrics"].iter_rows(min_row=2, values_only=True))
    assert [row[0] for row in metrics] == list(table.names)
    np.testing.assert_allclose([row[2] for row in metrics], table.roi, rtol=1e-15)
    assert len(list(book["ULTA"].iter_rows(min_row=2))) == len(done.report.inversions)
    assert "no Zone column" in str(book["Zones"].cell(2, 1).value)
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Winner fitness"] == exact(done.report.winner.fitness, rel=1e-15)
    assert summary["VaR 95% (daily loss)"] == exact(done.report.winner.metrics["var_95"], rel=1e-15)
    validation = {row[0]: row[1:] for row in book["Validation"].iter_rows(min_row=2, values_only=True)}
    v = done.report.validation
    assert v is not None and v.oos_metrics is not None and v.in_sample_oos_metrics is not None
    assert validation["Sharpe ratio, out of sample"] == exact(
        (v.oos_metrics["sharpe_ratio"], v.in_sample_oos_metrics["sharpe_ratio"]), rel=1e-15
    )
    assert validation["Deflated Sharpe probability"][0] == exact(v.deflated_sharpe_probability, rel=1e-15)
    assert validation["Verdict"][0] == v.verdict


def test_charts_decode_at_their_size_and_are_not_blank(done: JobOutcome) -> None:
    for name, size in (
        ("equity_curves.png", (1200, 800)),
        ("algorithm_comparison.png", (1400, 1000)),
        ("validation_equity.png", (1200, 800)),
    ):
        with Image.open(done.run_dir / name) as image:
            assert image.format == "PNG" and image.size == size
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert pixels.std() > 10 and (pixels < 100).mean() > 0.005  # drawn lines and text, not an empty canvas


def test_csvs_parse_and_match(done: JobOutcome) -> None:
    table = done.report.strategy_metrics
    assert table is not None
    with (done.run_dir / "portfolio_composition.csv").open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    w = done.report.winner
    assert [r["strategy"] for r in rows] == list(w.strategies)
    assert [int(r["rank"]) for r in rows] == list(range(1, w.size + 1))
    assert sum(float(r["weight"]) for r in rows) == pytest.approx(1.0)
    for r, j in zip(rows, w.members, strict=True):
        assert float(r["roi"]) == table.roi[j] and (r["inverted"] == "True") == bool(table.inverted[j])
    with (done.run_dir / "strategy_metrics.csv").open(newline="", encoding="utf-8-sig") as fh:
        metrics = list(csv.reader(fh))
    assert metrics[0] == ["Strategy", "ROI", "Max Drawdown", "Win Percentage", "Profit Factor", "Expectancy"]
    assert len(metrics) - 1 == len(table.names)
    np.testing.assert_array_equal([float(m[1]) for m in metrics[1:]], table.roi)  # full precision round trip
    np.testing.assert_array_equal([float(m[5]) for m in metrics[1:]], table.expectancy)


def test_text_reports(done: JobOutcome) -> None:
    ulta = (done.run_dir / "ulta_inversion_report.md").read_text()
    count = len(done.report.inversions)
    assert f"**{count:,} of 300 strategies**" in ulta
    assert sum(1 for line in ulta.splitlines() if line.startswith("| ") and line[2].isdigit()) == count
    zones = (done.run_dir / "zone_analysis_report.md").read_text()
    assert "has no `Zone` column" in zones and "| zone |" not in zones
    report = (done.run_dir / "performance_report.txt").read_text()
    w = done.report.winner
    assert f"Size {w.size}, {w.algorithm}" in report
    assert all(name in report for name in w.strategies)
    assert "VaR 95% (daily loss)" in report and "CVaR 95% (daily loss)" in report
    assert report.index(MEASUREMENTS_MARKER) > report.index("BEST FITNESS BY SIZE AND ALGORITHM")
    assert "VALIDATION" in report and "Verdict:" in report
    other = done.report.in_sample_winner  # the best of its size, as the per-size file says
    assert other is not None
    best = (done.run_dir / f"best_portfolio_size{other.size}.txt").read_text()
    assert all(name in best for name in other.strategies)
    validation = (done.run_dir / "validation_report.md").read_text()
    first = validation.split("\n\n")[2]
    assert first.startswith("**In sample Sharpe") and "out of sample" in first and "overfit" in first
    assert "training window (the first 20 days" in ulta


def _stable_json(path: Path) -> dict[str, object]:
    summary = json.loads(path.read_text())
    for key in ("created_at", "timings_s", "peak_rss_mb"):
        summary.pop(key)
    for result in summary["results"]:
        result.pop("seconds")
    for run in (summary["zones"] or {}).get("runs") or []:
        for result in run["results"]:
            result.pop("seconds")
    return summary


def test_same_seed_same_bytes_outside_the_measurements(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", 200, 30, seed=8)
    a = job(tmp_path, source, "a", job_id="same-job").run_dir
    b = job(tmp_path, source, "b", job_id="same-job").run_dir
    for name in sorted(p.name for p in a.iterdir()):
        if name.endswith((".csv", ".md")) or name.startswith("best_portfolio") or name == "error_log.txt":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        elif name.endswith(".txt"):
            head = lambda p: p.read_text().split(MEASUREMENTS_MARKER)[0]  # noqa: E731
            assert head(a / name) == head(b / name), name
    assert _stable_json(a / "execution_summary.json") == _stable_json(b / "execution_summary.json")


KILLED = """
import pathlib, sys, time
sys.path.insert(0, {root!r})
if __name__ == "__main__":
    from optimizer.config import load_config
    from optimizer.pipeline import run_job
    from outputs import writers
    real = writers.WRITERS["strategy_metrics.csv"]
    def slow(report, folder):
        real(report, folder)
        pathlib.Path({flag!r}).write_text("writing")
        time.sleep(120)
    writers.WRITERS["strategy_metrics.csv"] = slow
    run_job({source!r}, load_config(environ={{}}, overrides={sets!r}), out_dir={out!r})
"""


def test_a_job_killed_while_writing_leaves_no_run_folder(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", 100, 20, seed=3)
    out, flag = tmp_path / "out", tmp_path / "writing.flag"
    sets = [*SETS, f"DATABASE.data_dir={tmp_path / 'data'}"]
    code = KILLED.format(root=str(ROOT), flag=str(flag), source=str(source), sets=sets, out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None, "the job ended before it was killed"
            assert time.monotonic() < deadline, "the job never reached its outputs"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not list(out.glob("run_*")), "a visible run folder exists after the kill"
    assert len(list(out.glob(".run_*.partial-*"))) == 1
    after = job(tmp_path, source, "out")  # the next job in that folder sweeps the dead job's partial folder
    assert after.run_dir.is_dir() and not list(out.glob(".run_*.partial-*"))


def test_zone_input_gets_a_zone_report(tmp_path: Path, zones_sample: Path) -> None:
    done = job(tmp_path, zones_sample, "out")
    report = (done.run_dir / "zone_analysis_report.md").read_text()
    for zone in "ABCD":
        assert f"| {zone} | 22 |" in report
    sheet = openpyxl.load_workbook(done.run_dir / "optimization_summary.xlsx")["Zones"]
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["A", "B", "C", "D"]


HOSTILE = ['=HYPERLINK("http://x","y")', "+cmd|calc", "-1 SL", "a|b", "[x](http://e)", 'Ünï,cödé "q"']


def test_hostile_strategy_names_stay_inert_and_intact(tmp_path: Path) -> None:
    """Names that look like formulas, links or Markdown come out as plain text in every file."""
    rng = np.random.default_rng(4)
    pnl = np.round(rng.normal(0, 100, (12, 20)), 2)
    pnl[:, : len(HOSTILE)] -= 300.0  # losers: they appear in the ULTA report too
    names = [*HOSTILE, *(f"s{j}" for j in range(20 - len(HOSTILE)))]
    source = tmp_path / "hostile.csv"
    with source.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Date", *names])
        for d, row in enumerate(pnl):
            writer.writerow([f"2024-02-{d + 1:02d}", *row.tolist()])
    done = job(
        tmp_path, source, "out", "PORTFOLIO.min_size=3", "PORTFOLIO.max_size=3", "OPTIMIZATION.apply_ulta_logic=False"
    )
    raw = (done.run_dir / "strategy_metrics.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with the mark
    with (done.run_dir / "strategy_metrics.csv").open(newline="", encoding="utf-8-sig") as fh:
        written = [row[0] for row in list(csv.reader(fh))[1:]]
    expected = ["'" + n if n[0] in "=+-@" else n for n in names]
    assert written == expected
    ulta = job(tmp_path, source, "out2", "PORTFOLIO.min_size=3", "PORTFOLIO.max_size=3")
    md = (ulta.run_dir / "ulta_inversion_report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(ulta.report.inversions) >= len(HOSTILE)
    assert all(row.count(" | ") == 5 for row in rows)  # no name broke the table
    assert "| a\\|b |" in md and "| \\[x\\](http://e) |" in md  # original names, escaped


def test_two_runs_in_the_same_second_get_two_folders(done: JobOutcome, tmp_path: Path) -> None:
    from outputs.writers import write_run_folder

    started = time.localtime()
    first, _ = write_run_folder(done.report, tmp_path, started)
    second, _ = write_run_folder(done.report, tmp_path, started)
    assert first != second and second.name == first.name + "-2"
    assert sorted(p.name for p in first.iterdir()) == sorted(p.name for p in second.iterdir())


def _cells(path: Path) -> dict[str, list[tuple[object, ...]]]:
    book = openpyxl.load_workbook(path, read_only=True)
    return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets}


def test_the_workbook_written_by_a_worker_process_is_the_one_written_here(
    done: JobOutcome, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``offload`` (the job's worker pool) the workbook is written by a worker while this
    process writes the rest: the same cells. A worker that fails to write it leaves it to this process."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from optimizer.parallel import WorkerPool
    from outputs.writers import write_run_folder

    sent: list[str] = []
    pool = WorkerPool(2)

    def offload(fn: Any, *args: Any) -> Future[Any] | None:
        sent.append(fn.__name__)
        return pool.submit(fn, *args)

    try:
        there, errors = write_run_folder(done.report, tmp_path / "there", time.localtime(), offload=offload)
    finally:
        pool.close()
    assert sent == ["write_workbook"] and errors == [] and "not written by the worker" not in caplog.text
    here, _ = write_run_folder(done.report, tmp_path / "here", time.localtime())
    assert sorted(p.name for p in there.iterdir()) == sorted(p.name for p in here.iterdir())
    expected = _cells(here / "optimization_summary.xlsx")
    assert _cells(there / "optimization_summary.xlsx") == expected and len(expected) >= 8

    killed: Future[Any] = Future()
    killed.set_exception(BrokenProcessPool("a worker was killed"))

    def killed_midway(fn: Any, report: Any, folder: Path) -> Future[Any]:
        (folder / ".tmpk1ll3d.tmp").write_bytes(b"PK\x03\x04")  # what a worker killed mid-file leaves
        return killed

    again, errors = write_run_folder(done.report, tmp_path / "again", time.localtime(), offload=killed_midway)
    assert errors == [] and _cells(again / "optimization_summary.xlsx") == expected
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in here.iterdir())  # no leftover
    assert "optimization_summary.xlsx: not written by the worker process (BrokenProcessPool" in caplog.text


def test_the_page_links_a_workbook_its_worker_finishes_last(done: JobOutcome, tmp_path: Path) -> None:
    """At 25,544 strategies the worker's workbook takes longer than every other file together: the
    page, which links the files it finds, is written only once the workbook is there."""
    from concurrent.futures import Future

    from outputs.writers import write_run_folder

    class Late(Future[Any]):
        """Runs its writer only when someone waits for it: the slowest a worker can be."""

        def __init__(self, fn: Any, *args: Any) -> None:
            super().__init__()
            self.work = partial(fn, *args)

        def result(self, timeout: float | None = None) -> Any:
            if not self.done():
                self.set_result(self.work())
            return super().result(timeout)

    late, _ = write_run_folder(done.report, tmp_path / "late", time.localtime(), offload=Late)
    here, _ = write_run_folder(done.report, tmp_path / "here", time.localtime())
    page = (late / "report.html").read_text(encoding="utf-8")
    assert '<a href="optimization_summary.xlsx">' in page
    assert page == (here / "report.html").read_text(encoding="utf-8")


def test_run_folder_files_have_the_mode_a_new_file_gets(done: JobOutcome, tmp_path: Path) -> None:
    """Desk users open the results as another account on the share: every file gets 0o666 less
    the umask, as ``open`` would give it (not mkstemp's 0o600)."""
    from outputs.writers import write_run_folder

    for umask, expected in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        previous = os.umask(umask)
        try:
            folder, _ = write_run_folder(done.report, tmp_path / oct(umask), time.localtime())
        finally:
            os.umask(previous)
        modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
        assert len(modes) > 10 and set(modes.values()) == {expected}, (oct(umask), modes)


def test_the_sweep_only_removes_this_hosts_dead_folders(tmp_path: Path) -> None:
    from outputs.writers import HOST, sweep_partial_folders

    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    mine_dead = tmp_path / f".run_1_a.partial-{HOST}-{dead}"
    mine_alive = tmp_path / f".run_1_b.partial-{HOST}-{os.getpid()}"
    other_host = tmp_path / f".run_1_c.partial-elsewhere-{dead}"
    for folder in (mine_dead, mine_alive, other_host):
        folder.mkdir()
    assert sweep_partial_folders(tmp_path) == [mine_dead]
    assert mine_alive.exists() and other_host.exists()


def test_the_page_is_self_contained_and_says_what_the_report_says(done: JobOutcome) -> None:
    page = (done.run_dir / "report.html").read_text(encoding="utf-8")
    r, v = done.report, done.report.validation
    assert v is not None and v.oos_metrics is not None
    assert f"Trade the {r.winner.size}-strategy portfolio found by {html.escape(r.winner.algorithm)}" in page
    assert html.escape(outputs_validation.headline(r)) in page
    for name in r.winner.strategies:
        assert f"<li>{html.escape(name)}</li>" in page
    # Every chart of the folder embedded, byte for byte; nothing fetched from anywhere.
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    charts = ["equity_curves.png", "validation_equity.png", "algorithm_comparison.png"]
    assert [base64.b64decode(e) for e in embedded] == [(done.run_dir / c).read_bytes() for c in charts]
    assert not re.search(r"(src|href)=\"(?!data:)[a-z]+:", page) and "http://" not in page and "https://" not in page
    assert "default-src 'none'" in page  # the browser refuses any request the page might make
    for link in re.findall(r'href="([^"]+)"', page):  # the other files, by name, beside the page
        assert "/" not in link and (done.run_dir / link).exists(), link
    assert number(v.oos_metrics["sharpe_ratio"]) in page


def test_the_page_in_headless_chromium_with_no_network(done: JobOutcome, tmp_path: Path) -> None:
    browser = chromium()
    offline = ["unshare", "-n"]  # a network namespace with no interface up: nothing can leave
    if subprocess.run([*offline, "true"], capture_output=True, check=False).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("unshare -n failed on CI (it runs as root)")
        pytest.skip("needs root for a private network namespace (unshare -n)")
    page = (done.run_dir / "report.html").as_uri()
    shot = tmp_path / "report.png"
    flags = [*offline, *headless(browser, tmp_path / "profile", 1280, 2400)]
    done_shot = subprocess.run([*flags, f"--screenshot={shot}", page], capture_output=True, text=True, timeout=120)
    assert done_shot.returncode == 0 and shot.exists(), done_shot.stderr[-2000:]
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Trade the" in dom.stdout and dom.stdout.count('<img alt="') == 3

    image = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64) / 255
    assert image.shape[:2] == (2400, 1280)
    assert float(image.std()) > 0.05  # not a blank page
    # The charts drew: the first chart's area (below the headline, the metrics and why each member is in)
    # has plot colours, not only the page's greys and white.
    saturation = image.max(axis=2) - image.min(axis=2)
    assert float((saturation[1200:2400] > 0.25).mean()) > 0.002
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report_page.png")


def test_each_members_contribution_is_the_reference_fitness_without_it(done: JobOutcome) -> None:
    """Recomputed from the input file by the plain per-portfolio oracle (algorithms/reference.py)."""
    r, v = done.report, done.report.validation
    assert v is not None and len(r.contributions) == r.winner.size
    dataset = load_csv(done.run_dir.parent.parent / "in.csv")
    dates, daily = dataset.daily()
    days = {w.name: w for w in v.folds[-1].windows}
    train = (dates >= np.datetime64(days["training"].first_date)) & (dates <= np.datetime64(days["training"].last_date))
    test = (dates >= np.datetime64(days["test"].first_date)) & (dates <= np.datetime64(days["test"].last_date))
    column = {name: j for j, name in enumerate(dataset.strategies)}
    inverted = {inv.name for inv in r.inversions}
    oriented = np.where(np.isin(np.array(dataset.strategies), list(inverted)), -daily, daily)
    objective = Objective(
        r.metric,
        penalty_weight=r.config["OPTIMIZATION"]["correlation_penalty_weight"],
        drawdown_threshold=r.config["OPTIMIZATION"]["drawdown_threshold"],
        periods_per_year=r.config["OPTIMIZATION"]["periods_per_year"],
    )

    def col(name: str) -> int:
        return column[name.removesuffix("_inv")]

    members = [col(name) for name in r.winner.strategies]
    whole = reference_fitness(oriented[train], np.array(members), objective)
    assert whole == pytest.approx(r.winner.fitness, rel=1e-9, abs=1e-9)
    for k, c in enumerate(r.contributions):
        assert c.name == r.winner.strategies[k]
        others = np.array(members[:k] + members[k + 1 :])
        without = reference_fitness(oriented[train], others, objective)
        assert c.fitness_without == pytest.approx(without, rel=1e-9, abs=1e-9)
        assert c.contribution == pytest.approx(whole - without, rel=1e-9, abs=1e-9)
        series = oriented[test][:, others].mean(axis=1)
        expected_sharpe = series.mean() / series.std(ddof=1) * np.sqrt(objective.periods_per_year)
        assert c.test_sharpe_without == pytest.approx(expected_sharpe, rel=1e-9)
        # The substitute: no outsider does better in this member's place (checked on every outsider).
        assert c.substitute is not None and c.substitute not in r.winner.strategies
        swapped = np.array(members)
        swapped[k] = col(c.substitute)
        assert c.substitute_fitness == pytest.approx(reference_fitness(oriented[train], swapped, objective), rel=1e-9)
        for outsider in sorted(set(range(len(dataset.strategies))) - set(members))[::7]:
            trial = np.array(members)
            trial[k] = outsider
            assert reference_fitness(oriented[train], trial, objective) <= c.substitute_fitness + 1e-9
    summary = json.loads((done.run_dir / "execution_summary.json").read_text())
    assert summary["contributions"][0]["name"] == r.winner.strategies[0]
    book = openpyxl.load_workbook(done.run_dir / "optimization_summary.xlsx", read_only=True)
    sheet = list(book["Why each member"].iter_rows(values_only=True))
    assert [row[0] for row in sheet[1:]] == list(r.winner.strategies)
    assert "Why each strategy is in" in (done.run_dir / "report.html").read_text()


def test_a_second_run_of_the_same_book_says_what_changed(tmp_path: Path) -> None:
    source = tmp_path / "desk_book.csv"
    write_csv(source, 200, 40, seed=5)
    first = job(tmp_path, source, "out")
    assert first.report.since_last_run is None and first.report.book == "desk_book"
    write_csv(source, 200, 40, seed=6)  # the next night's export, same name
    # A summary edited by hand on the share, newest by its folder name: passed over, not fatal.
    bogus = tmp_path / "out" / "run_99991231_235959_desk_book-bogus"
    bogus.mkdir()
    (bogus / "execution_summary.json").write_text(
        json.dumps({"job_id": "x", "book": "desk_book", "created_at": "2000-01-01T00:00:00+00:00", "winner": {}})
    )
    second = job(tmp_path, source, "out")
    change = second.report.since_last_run
    assert change is not None and change.previous_job_id == first.job_id
    assert change.previous_run_folder == first.run_dir.name
    before, now = set(first.report.winner.strategies), set(second.report.winner.strategies)
    assert set(change.came_in) == now - before and set(change.went_out) == before - now
    assert change.kept == len(before & now)
    figures = {name: (b, n) for name, b, n in change.figures}
    assert figures["Size"] == (first.report.winner.size, second.report.winner.size)
    assert figures["Sharpe ratio, in sample"] == (
        first.report.winner.metrics["sharpe_ratio"],
        second.report.winner.metrics["sharpe_ratio"],
    )
    v1, v2 = first.report.validation, second.report.validation
    assert v1 is not None and v2 is not None and v1.oos_metrics is not None and v2.oos_metrics is not None
    assert figures["Sharpe ratio, out of sample"] == (v1.oos_metrics["sharpe_ratio"], v2.oos_metrics["sharpe_ratio"])
    summary = json.loads((second.run_dir / "execution_summary.json").read_text())
    jsonschema.validate(summary, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert summary["since_last_run"]["previous_job_id"] == first.job_id and summary["book"] == "desk_book"
    page = (second.run_dir / "report.html").read_text()
    assert "Since the last run of desk_book" in page and f"../{first.run_dir.name}/report.html" in page
    # Another file named as the same book by GENERAL.book compares with the newest run of that book.
    other = write_csv(tmp_path / "renamed_export.csv", 200, 40, seed=7)
    third = job(tmp_path, other, "out", "GENERAL.book=desk_book")
    assert third.report.since_last_run is not None and third.report.since_last_run.previous_job_id == second.job_id
    assert job(tmp_path, other, "out").report.since_last_run is None  # its own book: no earlier run


def test_a_strategy_ulta_turned_the_other_way_is_kept_not_replaced(done: JobOutcome) -> None:
    report = done.report
    names = list(report.winner.strategies)
    a, b = names[0], names[1]
    flip = lambda n: n.removesuffix("_inv") if n.endswith("_inv") else n + "_inv"  # noqa: E731
    before = [flip(a), b, "Somebody else #1", *names[3:]]  # a turned the other way since; names[2] is new
    summary = {
        "job_id": "yesterday",
        "created_at": "2000-01-01T00:00:00+00:00",
        "winner": {"size": len(before), "fitness": 1.0, "strategies": before, "metrics": {"sharpe_ratio": 2.0}},
        "validation": "not an object",  # tolerated: no out-of-sample figure then
    }
    change = history._compare(done.run_dir, summary, report)
    assert change.came_in == (names[2],) and change.went_out == ("Somebody else #1",)
    assert change.flipped == (a,) and change.kept == len(names) - 1
    figures = {name: (before_, now) for name, before_, now in change.figures}
    assert figures["Sharpe ratio, out of sample"][0] is None and figures["Total ROI, in sample"][0] is None
