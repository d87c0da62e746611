"""The ``heavyopt`` command."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from errors import ConfigError, HeavyOptError, InputError, JobFailed
from optimizer import __version__
from optimizer.config import Config, load_config

app = typer.Typer(
    name="heavyopt",
    help="Heavy Optimizer: pick the best portfolio of option strategies from a P&L CSV.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
OUTPUT_ERRORS_EXIT = 6  # the job completed but some output files could not be written
WAIT_TIMEOUT_EXIT = 7  # submit --wait: no result in time
out = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="INI file (config_zone.ini keys).", dir_okay=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a key: SECTION.key=value (repeatable), e.g. PORTFOLIO.max_size=40."),
]


def _fail(exc: HeavyOptError) -> typer.Exit:
    err.print(f"heavyopt: {exc}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _config(config_file: Path | None, sets: list[str] | None, extra: list[str]) -> Config:
    return load_config([config_file] if config_file else [], overrides=[*(sets or []), *extra])


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Strategy P&L CSV: Date, optional metadata, one column per strategy.")],
    config_file: ConfigOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for run folders [OUTPUT.dir].")] = None,
    seed: Annotated[int | None, typer.Option(help="Job seed [GENERAL.seed].")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the DuckDB file lives [DATABASE.data_dir].")] = None,
    sets: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Optimise one CSV: load → ULTA → correlation → search every size → validation → winner → run folder."""
    from optimizer.pipeline import run_job

    extra = []
    if seed is not None:
        extra.append(f"GENERAL.seed={seed}")
    if data_dir is not None:
        extra.append(f"DATABASE.data_dir={data_dir}")
    if out_dir is not None:
        extra.append(f"OUTPUT.dir={out_dir}")
    try:
        config = _config(config_file, sets, extra)
        progress = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=err,
            disable=quiet or not err.is_terminal,
            transient=True,
        )
        with progress:
            task = progress.add_task("load", total=100)

            def report(step: str, pct: float) -> None:
                progress.update(task, description=step, completed=pct)

            outcome = run_job(file, config, out_dir=Path(config.output.dir), progress=report)
    except HeavyOptError as exc:
        raise _fail(exc) from None
    w = outcome.report.winner
    metrics = w.metrics
    out.print(
        f"winner: size {w.size}, {w.algorithm}, fitness {w.fitness:.6g} "
        f"(ROI {metrics['total_roi']:,.2f}, max DD {metrics['max_drawdown']:,.6g}, "
        f"avg corr {metrics['avg_correlation']:.3f})",
        highlight=False,
        soft_wrap=True,
    )
    from outputs.validation import validation_summary

    _print_validation(validation_summary(outcome.report))
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in outcome.report.timings_s)
    out.print(f"steps: {timings}", highlight=False, soft_wrap=True)
    out.print(str(outcome.run_dir), highlight=False, soft_wrap=True)
    for line in outcome.writer_errors:
        err.print(f"heavyopt: output failed: {line} (see error_log.txt in the run folder)", markup=False)
    if outcome.writer_errors:
        raise typer.Exit(OUTPUT_ERRORS_EXIT)


def _print_validation(summary: dict[str, Any] | None) -> None:
    """One line from a job's validation summary: the headline and verdict, or why it was not validated."""
    if not summary:
        return
    if summary.get("method", "none") != "none":
        line = f"validation: {summary['headline']} Verdict: {summary['verdict']}."
    else:
        why = summary.get("note") or "VALIDATION.method = none"
        line = f"validation: not validated ({why}); every figure is in sample"
    out.print(line, highlight=False, soft_wrap=True)


@app.command()
def generate(
    file: Annotated[Path, typer.Argument(help="CSV to write.")],
    strategies: Annotated[int, typer.Option(min=1, help="Number of strategy columns.")] = 25_544,
    days: Annotated[int, typer.Option(min=2, help="Number of trading days (rows).")] = 82,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; same seed, same file.")] = 1,
) -> None:
    """Write a realistic synthetic P&L CSV calibrated to the production statistics."""
    from optimizer.synthetic import write_csv

    path = write_csv(file, strategies, days, seed)
    out.print(f"wrote {path} ({strategies} strategies × {days} days, {path.stat().st_size / 1e6:.1f} MB)")


@app.command()
def demo(
    work_dir: Annotated[Path, typer.Option("--dir", help="Where to put the demo CSV and run folders.")] = Path("demo"),
    sets: SetOpt = None,
) -> None:
    """Generate a production-shape file (25,544 × 82) and optimise it with the defaults."""
    from optimizer.synthetic import write_csv

    work_dir.mkdir(parents=True, exist_ok=True)
    csv_path = work_dir / "demo_strategies.csv"
    if not csv_path.exists():
        write_csv(csv_path, 25_544, 82, seed=1)
        out.print(f"generated {csv_path}")
    run(csv_path, None, work_dir / "output", None, work_dir / "data", sets, False)


@app.command()
def bench(
    strategies: Annotated[int, typer.Option(min=100)] = 25_544,
    days: Annotated[int, typer.Option(min=10)] = 82,
    seed: Annotated[int, typer.Option(min=0)] = 1,
    threads: Annotated[int, typer.Option(min=1, help="Threads for the multi-threaded batch figure.")] = 2,
    seeds: Annotated[int, typer.Option(min=0, help="Seeds per algorithm in the quality table (0 = skip it).")] = 5,
    budget: Annotated[int, typer.Option(min=1, help="Evaluations per algorithm in the quality table.")] = 10_000,
    metric: Annotated[str, typer.Option(help="Metric for the quality table.")] = "ratio",
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON.")] = None,
    with_sweep: Annotated[
        bool, typer.Option("--sweep", help="Also time whole jobs (sizes 35..100) on NumPy and, with a GPU, CuPy.")
    ] = False,
) -> None:
    """Time every step on a generated file beside same-run baselines; then compare the algorithms.

    With a working GPU (CuPy) the GPU figures are measured too, beside the NumPy ones."""
    import dataclasses
    import os
    import platform

    from algorithms.fitness import METRICS
    from optimizer.bench import quality, run_bench

    if metric not in METRICS:
        raise _fail(ConfigError(f"bench: --metric {metric!r}: must be one of {', '.join(METRICS)}"))
    from optimizer.bench import sweep

    rows, problem = run_bench(strategies, days, seed, threads, Path(tempfile.gettempdir()))
    if with_sweep:
        rows += sweep(strategies, days, seed, Path(tempfile.gettempdir()))
    wide = Console(width=max(out.width, 132))
    table = Table(title=f"heavyopt bench: {strategies} × {days}, {os.cpu_count()} CPUs, {platform.processor() or ''}")
    for col in ("step", "seconds", "rate", "baseline", "speed-up"):
        table.add_column(col, justify="left" if col in ("step", "baseline") else "right")
    for r in rows:
        rate = f"{r.rate:,.0f} {r.unit}" if r.rate is not None else ""
        base = f"{r.baseline} {r.baseline_seconds:.3f}s" if r.baseline_seconds is not None else ""
        speed = f"{r.speedup:.1f}×" if r.speedup is not None else ""
        table.add_row(r.step, f"{r.seconds:.3f}", rate, base, speed)
    wide.print(table)
    scores: list[Any] = []
    blind: list[Any] = []
    if seeds:
        objective = dataclasses.replace(problem.objective, metric=metric)
        measured = dataclasses.replace(problem, objective=objective)
        # Before/after in one run: guided (the default) and blind (OPTIMIZATION.guided = false).
        scores = quality(measured.guided(True), seeds, budget)
        blind = quality(measured.guided(False), seeds, budget)
        table = Table(
            title=f"quality: best fitness ({metric} − 10·avgcorr), n = {problem.size}, "
            f"{budget:,} evaluations, {seeds} seeds, ULTA on; guided (default) and blind (OPTIMIZATION.guided=false)"
        )
        for col in ("algorithm", "mean", "std", "min", "median", "max", "s/run", "blind mean", "blind s/run"):
            table.add_column(col, justify="left" if col == "algorithm" else "right")
        for q, b in zip(scores, blind, strict=True):
            table.add_row(
                q.algorithm,
                *(f"{v:,.4g}" for v in (q.mean, q.std, q.minimum, q.median, q.maximum)),
                f"{q.seconds:.3f}",
                f"{b.mean:,.4g}",
                f"{b.seconds:.3f}",
            )
        wide.print(table)
    if json_file:
        payload = {
            "strategies": strategies,
            "days": days,
            "seed": seed,
            "threads": threads,
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "rows": [{**r.__dict__, "speedup": r.speedup} for r in rows],
            "quality": {
                "metric": metric,
                "size": problem.size,
                "budget": budget,
                "seeds": seeds,
                "algorithms": [dataclasses.asdict(q) for q in scores],
                "blind": [dataclasses.asdict(q) for q in blind],
            },
        }
        json_file.write_text(json.dumps(payload, indent=2) + "\n")


ShareOpt = Annotated[Path | None, typer.Option(help="Share root with input/, jobs/, output/, archive/ [QUEUE.share].")]
DataDirOpt = Annotated[Path | None, typer.Option(help="Job database and DuckDB store [DATABASE.data_dir].")]
PollOpt = Annotated[bool | None, typer.Option("--poll/--inotify", help="Poll (CIFS/NFS mounts) [QUEUE.poll].")]
LogFormatOpt = Annotated[str, typer.Option("--log-format", help="text, or json (one object per line, for journald).")]


def _daemon(
    share: Path | None,
    config_file: Path | None,
    data_dir: Path | None,
    poll: bool | None,
    sets: list[str],
    log_format: str = "text",
) -> Any:
    """The configured queue daemon, with logging set up; not started."""
    from jobqueue.daemon import Daemon, server_layers
    from jobqueue.share import Share
    from optimizer.config import build_config
    from optimizer.config import data_dir as data_folder
    from optimizer.logs import LOG_FORMATS, setup_logging

    if log_format not in LOG_FORMATS:
        raise ConfigError(f"config error: --log-format {log_format!r}: use one of {', '.join(LOG_FORMATS)}")
    extra = []
    if share is not None:
        extra.append(f"QUEUE.share={share.absolute()}")
    if data_dir is not None:
        extra.append(f"DATABASE.data_dir={data_dir.absolute()}")
    if poll is not None:
        extra.append(f"QUEUE.poll={poll}")
    layers = server_layers([config_file] if config_file else [], [*sets, *extra])
    config = build_config(layers)
    if not config.queue.share:
        raise ConfigError("config error: QUEUE.share is not set; give --share DIR or set it in the config file")
    setup_logging(log_format)
    return Daemon(Share(Path(config.queue.share).absolute()), config, layers, data_folder(config).absolute())


@app.command()
def watch(
    share: ShareOpt = None,
    config_file: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    poll: PollOpt = None,
    sets: SetOpt = None,
    log_format: LogFormatOpt = "text",
) -> None:
    """Watch a share for CSVs and job files; run each as a job; publish results (runs until SIGTERM)."""
    import signal

    try:
        daemon = _daemon(share, config_file, data_dir, poll, sets or [], log_format)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: daemon.stop.set())
        daemon.run()
    except HeavyOptError as exc:
        raise _fail(exc) from None


@app.command()
def serve(
    share: ShareOpt = None,
    config_file: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [API.host, default 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [API.port, default 8080].")] = None,
    poll: PollOpt = None,
    sets: SetOpt = None,
    log_format: LogFormatOpt = "text",
) -> None:
    """The queue daemon and the status API in one service (runs until SIGTERM)."""
    import logging
    import signal
    import threading
    import time

    import uvicorn

    from api.app import create_app

    extra = [*(sets or [])]
    if host is not None:
        extra.append(f"API.host={host}")
    if port is not None:
        extra.append(f"API.port={port}")
    try:
        daemon = _daemon(share, config_file, data_dir, poll, extra, log_format)
        api = daemon.config.api
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: daemon.stop.set())
        daemon.start()
        try:
            web = create_app(
                daemon.data_dir / "queue.sqlite3",
                daemon.share,
                token=api.token,
                rescan_s=daemon.config.queue.rescan_s,
                daemon=daemon,
            )
            server = uvicorn.Server(
                uvicorn.Config(
                    web,
                    host=api.host,
                    port=api.port,
                    access_log=False,
                    timeout_graceful_shutdown=5,
                    log_config=None,  # uvicorn logs through our handler (text or JSON)
                )
            )
            thread = threading.Thread(target=server.run, name="api", daemon=True)
            thread.start()
            while not server.started and thread.is_alive():
                time.sleep(0.05)
            if not server.started:
                raise ConfigError(
                    f"config error: the status API cannot listen on {api.host}:{api.port} (see the log above); "
                    "set API.port / --port to a free port"
                )
            bound = server.servers[0].sockets[0].getsockname()[1]
            logging.getLogger("heavyopt").info("status API on http://%s:%s/", api.host, bound)
        except BaseException:
            daemon.stop.set()
            daemon.close()
            raise
        daemon.loop()  # until SIGTERM, then the stop grace; the API answers until the daemon has stopped
        server.should_exit = True
        thread.join(timeout=30)
    except HeavyOptError as exc:
        raise _fail(exc) from None


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="The CSV to run; copied into the share's input/.")],
    ini: Annotated[str, typer.Option("--ini", help="Job keys for this run (sidecar INI); empty = none.")] = "",
    share: ShareOpt = None,
    config_file: ConfigOpt = None,
    job_id: Annotated[str | None, typer.Option(help="Default: <file name>-<YYYYmmdd_HHMMSS>.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result; exit 0 completed, 5 failed.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="With --wait: give up after this many seconds (exit 7).")] = (
        14_400
    ),
) -> None:
    """Queue FILE as a job on the share, as a Windows client would (used by the nightly timer)."""
    import shutil
    import time

    from jobqueue.checks import JOB_ID
    from jobqueue.share import Share, write_json_atomic
    from optimizer.naming import job_stem

    extra = [f"QUEUE.share={share.absolute()}"] if share is not None else []
    try:
        config = _config(config_file, None, extra)
        if not config.queue.share:
            raise ConfigError("config error: QUEUE.share is not set; give --share DIR or set HEAVYOPT_QUEUE_SHARE")
        where = Share(Path(config.queue.share))
        if not where.input.is_dir() or not where.queue.is_dir():
            raise ConfigError(
                f"config error: QUEUE.share = {str(where.root)!r} has no input/ and jobs/queue/; is it the share "
                "that heavyopt serve/watch uses (it creates them)?"
            )
        if not file.is_file():
            raise InputError(f"input error: {file}: no such file; give the CSV to submit")
        sidecar = Path(ini) if ini.strip() else None
        if sidecar is not None and not sidecar.is_file():
            raise ConfigError(f"config error: --ini {ini!r}: no such file")
        stamp = time.strftime("%Y%m%d_%H%M%S")
        job_id = job_id or f"{job_stem(file.name, 60)}-{stamp}"
        if not JOB_ID.fullmatch(job_id):
            raise ConfigError(f"config error: --job-id {job_id!r}: use 1–100 letters, digits, '_' or '-'")
        for folder in (where.queue, where.processing):
            if (folder / f"{job_id}.json").exists():
                raise ConfigError(f"config error: job {job_id!r} is already queued; give another --job-id")
        name = f"{job_id}.csv"
        # Copied under names the daemon ignores, then renamed: it never sees a partial file.
        if sidecar is not None:
            shutil.copyfile(sidecar, where.input / f"~${job_id}.ini")
            Path(where.input / f"~${job_id}.ini").rename(where.input / f"{job_id}.ini")
        shutil.copyfile(file, where.input / f"~${name}")
        Path(where.input / f"~${name}").rename(where.input / name)
        write_json_atomic(
            where.queue / f"{job_id}.json",
            {
                "job_id": job_id,
                "input_file": name,
                "job_type": "portfolio_optimization",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "source": str(file.absolute()),
                "submitted_by": "heavyopt submit",
            },
        )
        out.print(f"submitted {job_id}: {file} -> {where.rel(where.input / name)}", highlight=False, soft_wrap=True)
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for folder in (where.completed, where.failed):
                path = folder / f"{job_id}.json"
                if path.exists():
                    result = json.loads(path.read_text(encoding="utf-8"))
                    _print_job(result)
                    if result["status"] != "completed":
                        raise typer.Exit(JobFailed.exit_code)
                    return
            time.sleep(1.0)
        err.print(
            f"heavyopt: no result for job {job_id} after {timeout:g} s; it is still queued or running "
            f"(heavyopt status {job_id}); is heavyopt serve/watch running on {where.root}?",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(WAIT_TIMEOUT_EXIT)
    except HeavyOptError as exc:
        raise _fail(exc) from None


@app.command()
def status(
    job_id: Annotated[str | None, typer.Argument(help="Show one job in full.")] = None,
    config_file: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what GET /status (or /jobs/{id}) returns.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Recent jobs to list.")] = 10,
) -> None:
    """What the daemon is doing, from its job database (the same as GET /status and GET /jobs)."""
    from api import views
    from jobqueue.view import QueueView
    from optimizer.config import data_dir as data_folder

    extra = [f"DATABASE.data_dir={data_dir.absolute()}"] if data_dir is not None else []
    try:
        config = _config(config_file, None, extra)
        path = data_folder(config) / "queue.sqlite3"
        if not path.exists():
            raise ConfigError(
                f"config error: no job database at {path}; give the daemon's --data-dir (DATABASE.data_dir)"
            )
        store = QueueView(path)
        if job_id is not None:
            doc = views.job(store, job_id)
            if doc is None:
                raise ConfigError(f"status: no job {job_id!r} in {path}")
            out.print_json(json.dumps(doc, default=str)) if as_json else _print_job(doc)
            return
        st = views.status(store)
        if as_json:
            out.print_json(json.dumps(st, default=str))
            return
        d = st["daemon"]
        out.print(
            f"daemon: {d['state'] or 'never started'} on {d['host']} (pid {d['pid']}), last scan {d['last_scan']}",
            highlight=False,
        )
        for j in st["running"]:
            out.print(f"running: {j['job_id']} ({j['input_file']}) {j['progress']:.1f} % {j['step']}", highlight=False)
        if not st["running"]:
            out.print("idle", highlight=False)
        out.print(f"queue: {len(st['queue'])} job(s) " + " ".join(q["job_id"] for q in st["queue"]), highlight=False)
        table = Table(title="recent jobs")
        for col in ("job", "state", "input", "finished", "winner", "run folder / reason"):
            table.add_column(col)
        for j in views.jobs(store, None, limit, 0)["items"]:
            w = j["winner"]
            table.add_row(
                j["job_id"],
                j["state"],
                j["input_file"] or "",
                (j["finished_at"] or "")[:19],
                f"size {w['size']}, {w['algorithm']}, {w['fitness']:.6g}" if w else "",
                j["run_folder"] or j["reason"] or "",
            )
        out.print(table)
    except HeavyOptError as exc:
        raise _fail(exc) from None


def _print_job(doc: dict[str, Any]) -> None:
    for key in (
        "job_id",
        "status",
        "input_file",
        "submitted_at",
        "started_at",
        "finished_at",
        "attempts",
        "step",
        "progress",
        "output_folder",
        "reason",
        "duplicate_of",
    ):
        if doc.get(key) is not None:
            out.print(f"{key}: {doc[key]}", highlight=False, soft_wrap=True)
    if doc.get("winner"):
        w = doc["winner"]
        out.print(f"winner: size {w['size']}, {w['algorithm']}, fitness {w['fitness']:.6g}", highlight=False)
    _print_validation(doc.get("validation"))
    for step, seconds in (doc.get("timings_s") or {}).items():
        out.print(f"  {step}: {seconds:.2f} s", highlight=False)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"heavyopt {__version__} (Python {sys.version.split()[0]})")


def main() -> None:  # pragma: no cover - console-script entry for python -m
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
