"""Commands of the queue and its API: watch, serve, submit, status."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.common import WAIT_TIMEOUT_EXIT, ConfigOpt, SetOpt, app, config_from, err, fail, out, print_validation
from errors import ConfigError, HeavyOptError, InputError, JobFailed
from optimizer.config import Config

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
        raise fail(exc) from None


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
    import signal

    extra = [*(sets or [])]
    if host is not None:
        extra.append(f"API.host={host}")
    if port is not None:
        extra.append(f"API.port={port}")
    try:
        daemon = _daemon(share, config_file, data_dir, poll, extra, log_format)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: daemon.stop.set())
        daemon.start()
        try:
            server, thread = _start_api(daemon)
        except BaseException:
            daemon.stop.set()
            daemon.close()
            raise
        daemon.loop()  # until SIGTERM, then the stop grace; the API answers until the daemon has stopped
        server.should_exit = True
        thread.join(timeout=30)
    except HeavyOptError as exc:
        raise fail(exc) from None


def _start_api(daemon: Any) -> tuple[Any, Any]:
    """The status API on a thread beside the started daemon; returns once it listens."""
    import logging
    import threading

    import uvicorn

    from api.app import create_app

    api = daemon.config.api
    web = create_app(
        daemon.store_path,
        daemon.share,
        token=api.token,
        rescan_s=daemon.config.queue.rescan_s,
        daemon=daemon,
        # Its own address when bound to one beyond loopback, and the names it is reached by (DNS rebinding).
        allowed_hosts=(api.host, *(name.strip() for name in api.allowed_hosts.split(",") if name.strip())),
        unc_root=daemon.config.queue.unc_root,
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
    return server, thread


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
    from jobqueue.checks import JOB_ID
    from optimizer.naming import job_stem

    extra = [f"QUEUE.share={share.absolute()}"] if share is not None else []
    try:
        config = config_from(config_file, None, extra)
        where = _submission_share(config)
        if not file.is_file():
            raise InputError(f"input error: {file}: no such file; give the CSV to submit")
        sidecar = Path(ini) if ini.strip() else None
        if sidecar is not None and not sidecar.is_file():
            raise ConfigError(f"config error: --ini {ini!r}: no such file")
        job_id = job_id or f"{job_stem(file.name, 60)}-{time.strftime('%Y%m%d_%H%M%S')}"
        if not JOB_ID.fullmatch(job_id):
            raise ConfigError(f"config error: --job-id {job_id!r}: use 1–100 letters, digits, '_' or '-'")
        for folder in (where.queue, where.processing):
            if (folder / f"{job_id}.json").exists():
                raise ConfigError(f"config error: job {job_id!r} is already queued; give another --job-id")
        name = _drop(where, file, sidecar, job_id)
        out.print(f"submitted {job_id}: {file} -> {where.rel(where.input / name)}", highlight=False, soft_wrap=True)
        if wait:
            _wait_for(where, job_id, timeout)
    except HeavyOptError as exc:
        raise fail(exc) from None


def _submission_share(config: Config) -> Any:
    """The share ``heavyopt submit`` drops into, checked to be one a daemon serves."""
    from jobqueue.share import Share

    if not config.queue.share:
        raise ConfigError("config error: QUEUE.share is not set; give --share DIR or set HEAVYOPT_QUEUE_SHARE")
    where = Share(Path(config.queue.share))
    if not where.input.is_dir() or not where.queue.is_dir():
        raise ConfigError(
            f"config error: QUEUE.share = {str(where.root)!r} has no input/ and jobs/queue/; is it the share "
            "that heavyopt serve/watch uses (it creates them)?"
        )
    return where


def _drop(where: Any, file: Path, sidecar: Path | None, job_id: str) -> str:
    """Copy the CSV (and sidecar) into input/ and write the job file; returns the CSV's name there.

    Copied under names the daemon ignores, then renamed: it never sees a partial file."""
    import shutil

    from jobqueue.share import write_json_atomic

    name = f"{job_id}.csv"
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
    return name


def _wait_for(where: Any, job_id: str, timeout: float) -> None:
    """Print the job's result once published; exit 5 if it failed, 7 if none came in ``timeout`` seconds."""
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


@app.command()
def status(
    job_id: Annotated[str | None, typer.Argument(help="Show one job in full.")] = None,
    share: ShareOpt = None,
    config_file: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what GET /status (or /jobs/{id}) returns.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Recent jobs to list.")] = 10,
) -> None:
    """What the daemon is doing, from its job database (the same as GET /status and GET /jobs)."""
    from api import views
    from jobqueue.view import QueueView

    extra = [f"DATABASE.data_dir={data_dir.absolute()}"] if data_dir is not None else []
    if share is not None:
        extra.append(f"QUEUE.share={share.absolute()}")
    try:
        config = config_from(config_file, None, extra)
        path = _job_database(config)
        store = QueueView(path)
        if job_id is not None:
            doc = views.job(store, job_id, config.queue.unc_root)
            if doc is None:
                raise ConfigError(f"status: no job {job_id!r} in {path}")
            out.print_json(json.dumps(doc, default=str)) if as_json else _print_job(doc)
            return
        st = views.status(store, config.queue.unc_root)
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
        for j in views.jobs(store, None, limit, 0, config.queue.unc_root)["items"]:
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
        raise fail(exc) from None


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
    print_validation(doc.get("validation"))
    for step, seconds in (doc.get("timings_s") or {}).items():
        out.print(f"  {step}: {seconds:.2f} s", highlight=False)


def _job_database(config: Config) -> Path:
    """The job database of ``QUEUE.share``; without one, that of the only share with jobs in the data folder."""
    from jobqueue.share import Share
    from jobqueue.store import store_path
    from jobqueue.view import QueueView
    from optimizer.config import data_dir as data_folder

    data = data_folder(config)
    if config.queue.share:
        root = Path(config.queue.share).absolute()
        path = store_path(data, Share(root).identity())
        if path is None or not path.exists():
            raise ConfigError(
                f"config error: no job database for the share {root} in {data}; no daemon has run on it yet, "
                "or give the daemon's --data-dir (DATABASE.data_dir)"
            )
        return path
    known = sorted((data / "shares").glob("*/queue.sqlite3"))
    if len(known) == 1:
        return known[0]
    if not known:
        raise ConfigError(f"config error: no job database in {data}; give the daemon's --data-dir (DATABASE.data_dir)")
    shares = ", ".join(str(QueueView(p).daemon().get("share")) for p in known)
    raise ConfigError(f"config error: several shares have jobs in {data} ({shares}); give --share DIR")
