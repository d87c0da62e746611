"""The status API (brief §8): FastAPI over the daemon's job database.

Read-only unless ``API.token`` is set; then ``POST /jobs`` (queue a file already in
``input/``) and ``POST /jobs/{id}/cancel`` need ``Authorization: Bearer <token>``.
Without a token those endpoints answer 403. No endpoint takes a path: files are named
by a plain name inside ``input/`` and jobs by their id.

The doors (docs/operations.md, "The API's doors"), checked in this order before any endpoint runs:

1. Every request: the ``Host`` header must name this server (``127.0.0.1``, ``localhost``,
   ``[::1]``, or a name given in ``create_app(allowed_hosts=...)``), any port; otherwise 400.
   This is the defence against DNS rebinding, which would make a web page "same-origin" with us.
2. Every request that is not GET, HEAD or OPTIONS: an ``Origin`` header, if sent, must name the
   same host and port as ``Host``, and ``Sec-Fetch-Site``, if sent, be ``same-origin`` or ``none``;
   otherwise 403, whatever the token. A body must be ``Content-Type: application/json``; otherwise
   415, so an HTML form or a "simple" ``fetch`` cannot submit (both refuse cross-site request forgery).
3. Every route on ``changes`` needs the token (``Context.authorise``), checked before the body is
   validated. A bearer token is never added by a browser on its own, so 2 is defence in depth.

No CORS headers are sent, so browsers keep other origins from reading any answer. The token
never appears in an answer or a log line. TLS is a reverse proxy's job when bound beyond loopback.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api import views
from api.page import STATUS_PAGE
from errors import ConfigError
from jobqueue.checks import JOB_ID
from jobqueue.share import Share, write_json_exclusive
from jobqueue.store import FINAL, now_iso
from jobqueue.view import QueueView
from optimizer import __version__
from optimizer.naming import job_stem

State = Literal["claiming", "queued", "running", "completed", "failed"]
log = logging.getLogger("heavyopt")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")  # the names a browser uses for this machine
BIND_ALL = ("", "0.0.0.0", "::", "[::]")  # bind addresses, not names: never a Host header's value
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # the methods that change nothing
DEFAULT_PORTS = {"http": 80, "https": 443}
# ``name[:port]`` as in a Host header: a DNS name or IPv4 address, or an IPv6 address in brackets.
AUTHORITY = re.compile(r"(?P<name>[a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?", re.IGNORECASE)
ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<authority>[^/]+)", re.IGNORECASE)


class Canceller(Protocol):
    def cancel(self, job_id: str) -> None: ...


class Submission(BaseModel):
    """``POST /jobs``: run a CSV that is already in ``input/`` (as an old client's job file would)."""

    input_file: str = Field(description="Name of a CSV directly in input/ (no folders).", examples=["desk.csv"])
    job_id: str | None = Field(default=None, description="Letters, digits, '_' or '-'; default: <file>-<time>.")
    portfolio_size: int | str | list[int] | None = Field(default=None, examples=[50, "35-100"])
    job_type: str | None = Field(default=None, examples=["portfolio_optimization", "zone_optimization"])


@dataclass(frozen=True)
class Context:
    """What the endpoints work with; ``create_app`` keeps it on ``app.state.api``."""

    store: QueueView  # read-only: jobs are submitted as files, cancelled through the daemon
    share: Share
    token: str
    rescan_s: float
    daemon: Canceller | None
    unc_root: str = ""  # QUEUE.unc_root: run folders also shown as Windows paths

    def authorise(self, authorization: str | None) -> None:
        if not self.token:
            raise HTTPException(403, "changing state through the API is off: the server has no API.token set")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPException(
                401, "give the API token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
            )


def _authority(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` -> (lower-case name, port); None when ``value`` is not one."""
    match = AUTHORITY.fullmatch(value)
    if match is None:
        return None
    port = match["port"]
    return match["name"].lower(), int(port) if port else None


def host_names(entries: Sequence[str]) -> frozenset[str]:
    """The names in ``entries`` as a Host header carries them (lower case, IPv6 in brackets, no port)."""
    names = set()
    for entry in entries:
        entry = entry.strip()
        if entry in BIND_ALL:
            continue
        if entry.count(":") > 1 and not entry.startswith("["):
            entry = f"[{entry}]"  # a bare IPv6 address, as API.host is written
        parsed = _authority(entry)
        if parsed is None:
            raise ConfigError(
                f"config error: allowed API host {entry!r} is not a host name or address; "
                "give names such as opt.example.com or 10.0.0.5"
            )
        names.add(parsed[0])
    return frozenset(names)


class Doors:
    """ASGI middleware: refuses a request at the door, before any endpoint runs (module docstring)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope["method"] if scope["type"] == "http" else "GET", Headers(scope=scope))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, why = refusal
        # %r: the header values are the caller's, and go into the log quoted.
        log.warning("status API refused %s %r: %s", scope.get("method", "websocket"), scope["path"][:200], why)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await JSONResponse({"detail": why}, status)(scope, receive, send)

    def refusal(self, method: str, headers: Headers) -> tuple[int, str] | None:
        """(status, reason) when the request may not come in; None when it may."""
        given = headers.getlist("host")
        host = _authority(given[0]) if len(given) == 1 else None
        if host is None or host[0] not in self.hosts:
            shown = repr(given[0][:100]) if len(given) == 1 else f"{len(given)} Host headers"
            return 400, (
                f"Host {shown} is not a name of this server: use http://127.0.0.1:<port>/, "
                "or ask the operator to add the name to the API's allowed hosts"
            )
        if method in SAFE_METHODS:
            return None
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "a page of another site may not change anything here"
        if "origin" in headers and not _same_origin(headers["origin"], host):
            return 403, "a page of another origin may not change anything here"
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if has_body and media_type != "application/json":
            return 415, "send the body as JSON, with 'Content-Type: application/json'"
        return None


def _same_origin(origin: str, host: tuple[str, int | None]) -> bool:
    """Whether ``origin`` (``scheme://name[:port]``) is the origin the Host header names.

    A browser builds both from the page's URL, so a Host without a port means the Origin scheme's default.
    "null" (a sandboxed frame, a file) and any other scheme are not.
    """
    match = ORIGIN.fullmatch(origin)
    parsed = _authority(match["authority"]) if match else None
    if match is None or parsed is None:
        return False
    default = DEFAULT_PORTS[match["scheme"].lower()]
    return parsed[0] == host[0] and (parsed[1] or default) == (host[1] or default)


async def _context(request: Request) -> Context:
    context: Context = request.app.state.api
    return context


Ctx = Annotated[Context, Depends(_context)]


def _authorised(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> None:
    ctx.authorise(authorization)


router = APIRouter()  # reads: GET only
# Every route that changes state goes here. The token is a dependency of the router, so it is checked before
# the route's body is validated (tests/api/test_doors.py calls every route but GET/HEAD ones without it).
changes = APIRouter(dependencies=[Depends(_authorised)])


def create_app(
    store_path: Path,
    share: Share,
    *,
    token: str = "",
    rescan_s: float = 30.0,
    daemon: Canceller | None = None,
    allowed_hosts: Sequence[str] = (),
    unc_root: str = "",
) -> FastAPI:
    """The API over the job database at ``store_path``.

    ``allowed_hosts``: names (or addresses) this server answers to besides the loopback ones, e.g.
    ``("opt.example.com", "10.0.0.5")`` when it is bound beyond loopback; a port in a name is ignored,
    and bind-all addresses (``0.0.0.0``, ``::``) are skipped, so ``API.host`` can always be passed.
    """
    app = FastAPI(
        title="Heavy Optimizer status API",
        version=__version__,
        description="Progress of the portfolio optimisation jobs queued on the share.",
    )
    app.include_router(router)
    app.include_router(changes)
    app.add_middleware(Doors, hosts=host_names((*LOOPBACK_HOSTS, *allowed_hosts)))
    app.state.api = Context(QueueView(store_path), share, token, rescan_s, daemon, unc_root)
    app.state.store = app.state.api.store
    return app


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> str:
    return STATUS_PAGE


@router.get("/status", summary="Idle or running, the current job's progress and step, and the queue")
def get_status(ctx: Ctx) -> dict[str, Any]:
    return views.status(ctx.store, ctx.unc_root)


@router.get("/jobs", summary="Jobs, newest first")
def get_jobs(
    ctx: Ctx,
    state: Annotated[State | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    return views.jobs(ctx.store, state, limit, offset, ctx.unc_root)


@router.get("/jobs/{job_id}", summary="One job: state, timestamps, step timings, progress, winner, run folder")
def get_job(job_id: str, ctx: Ctx) -> dict[str, Any]:
    doc = views.job(ctx.store, job_id, ctx.unc_root)
    if doc is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return doc


@router.get("/jobs/{job_id}/events", summary="Server-sent events: the job's progress until it ends")
async def get_events(
    job_id: str, request: Request, ctx: Ctx, last_event_id: Annotated[str | None, Header()] = None
) -> StreamingResponse:
    doc = views.job(ctx.store, job_id)
    if doc is None:
        raise HTTPException(404, f"no job {job_id!r}")
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return StreamingResponse(
        _events(ctx.store, int(doc["seq"]), after, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _events(store: QueueView, seq: int, after: int, request: Request) -> AsyncIterator[str]:
    """The job's events after event ``after``, then an ``end`` event once it has ended."""
    yield "retry: 2000\n\n"
    while True:
        for event in store.events(seq, after):
            after = event["id"]
            yield f"id: {after}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n"
        if store.get(seq)["state"] in FINAL and not store.events(seq, after):
            yield f"event: end\ndata: {json.dumps(views.job_summary(store.get(seq)))}\n\n"
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.5)


@router.get("/health", summary="Liveness: the store answers and the daemon scanned the share recently")
def get_health(response: Response, ctx: Ctx) -> dict[str, Any]:
    ok, body = views.health(ctx.store, ctx.rescan_s)
    response.status_code = 200 if ok else 503
    return body


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def get_metrics(ctx: Ctx) -> Response:
    return Response(views.metrics(ctx.store), media_type=CONTENT_TYPE_LATEST)


# After /jobs/{job_id}/events: a route matches in the order it was added.
# A file of a run folder, by name (report.html links its neighbours by name); never a path.
REPORT_POLICY = "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"  # as the page's own
RUN_FILE = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9]+)+")
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get(
    "/jobs/{job_id}/{name}",
    summary="A file of a completed job's run folder, by name: report.html, the charts, the reports",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}, 404: {"description": "no such job, or no such file"}},
)
def get_run_file(job_id: str, name: str, ctx: Ctx) -> Response:
    """The folder is the job's own, from the job database; the name must be a plain file name."""
    rows = ctx.store.submissions(job_id) if JOB_ID.fullmatch(job_id) else []
    done = [r for r in rows if r["state"] == "completed" and r["run_dir"]]
    suffix = Path(name).suffix.lower()
    if not done or not RUN_FILE.fullmatch(name) or suffix not in MEDIA_TYPES:
        raise HTTPException(404, f"no file {name!r} for job {job_id!r}")
    folder = (ctx.share.root / done[-1]["run_dir"]).resolve()
    if folder.parent != ctx.share.output.resolve():
        raise HTTPException(404, f"no file {name!r} for job {job_id!r}")
    try:  # the file itself, never what a link in the folder points to (anyone on the share can make one)
        fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        raise HTTPException(404, f"no file {name!r} for job {job_id!r}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise HTTPException(404, f"no file {name!r} for job {job_id!r}")
        content = fh.read()
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": REPORT_POLICY}
    return Response(content, media_type=MEDIA_TYPES[suffix], headers=headers)


@changes.post("/jobs", status_code=202, summary="Queue a CSV already in input/ (needs the API token)")
def post_job(submission: Submission, ctx: Ctx) -> dict[str, Any]:
    name = submission.input_file
    if not name or "/" in name or "\\" in name or name in (".", "..") or ":" in name:
        raise HTTPException(422, f"input_file {name!r}: give the name of a file directly in input/")
    job_id = submission.job_id or f"{job_stem(name, 60)}-{now_iso()[:19].replace(':', '').replace('-', '')}"
    if not JOB_ID.fullmatch(job_id):
        raise HTTPException(422, f"job_id {job_id!r}: use 1–100 letters, digits, '_' or '-'")
    queued = ctx.share.queue / f"{job_id}.json"
    if ctx.store.active(job_id) is not None or queued.exists():
        raise HTTPException(409, f"job {job_id!r} is already queued or running")
    if not (ctx.share.input / name).is_file() or (ctx.share.input / name).is_symlink():
        raise HTTPException(404, f"input_file {name!r} is not in input/; copy it there first")
    request = {k: v for k, v in submission.model_dump().items() if v is not None}
    request.update(job_id=job_id, timestamp=now_iso(), submitted_by="api")
    if not write_json_exclusive(queued, request):
        raise HTTPException(409, f"job {job_id!r} is already queued or running")
    return {"job_id": job_id, "state": "submitted", "job_file": f"jobs/queue/{job_id}.json"}


@changes.post("/jobs/{job_id}/cancel", status_code=202, summary="Cancel a queued or running job (needs the token)")
def cancel_job(job_id: str, ctx: Ctx) -> dict[str, Any]:
    row = ctx.store.active(job_id)
    if row is None:
        raise HTTPException(409 if views.job(ctx.store, job_id) else 404, f"job {job_id!r} is not queued or running")
    if ctx.daemon is None:
        raise HTTPException(503, "no daemon in this process to cancel jobs")
    ctx.daemon.cancel(job_id)
    return {"job_id": job_id, "state": "cancelling"}
