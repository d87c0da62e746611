"""The status API (brief §8): FastAPI over the daemon's job database.

Read-only unless ``API.token`` is set; then ``POST /jobs`` (queue a file already in
``input/``) and ``POST /jobs/{id}/cancel`` need ``Authorization: Bearer <token>``.
Without a token those endpoints answer 403. No endpoint takes a path: files are named
by a plain name inside ``input/`` and jobs by their id.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from api import views
from api.page import STATUS_PAGE
from jobqueue.checks import JOB_ID
from jobqueue.share import Share, write_json_exclusive
from jobqueue.store import FINAL, now_iso
from jobqueue.view import QueueView
from optimizer import __version__
from optimizer.naming import job_stem

State = Literal["claiming", "queued", "running", "completed", "failed"]


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

    def authorise(self, authorization: str | None) -> None:
        if not self.token:
            raise HTTPException(403, "changing state through the API is off: the server has no API.token set")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPException(
                401, "give the API token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
            )


async def _context(request: Request) -> Context:
    context: Context = request.app.state.api
    return context


Ctx = Annotated[Context, Depends(_context)]
router = APIRouter()


def create_app(
    store_path: Path,
    share: Share,
    *,
    token: str = "",
    rescan_s: float = 30.0,
    daemon: Canceller | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Heavy Optimizer status API",
        version=__version__,
        description="Progress of the portfolio optimisation jobs queued on the share.",
    )
    app.include_router(router)
    app.state.api = Context(QueueView(store_path), share, token, rescan_s, daemon)
    app.state.store = app.state.api.store
    return app


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> str:
    return STATUS_PAGE


@router.get("/status", summary="Idle or running, the current job's progress and step, and the queue")
def get_status(ctx: Ctx) -> dict[str, Any]:
    return views.status(ctx.store)


@router.get("/jobs", summary="Jobs, newest first")
def get_jobs(
    ctx: Ctx,
    state: Annotated[State | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    return views.jobs(ctx.store, state, limit, offset)


@router.get("/jobs/{job_id}", summary="One job: state, timestamps, step timings, progress, winner, run folder")
def get_job(job_id: str, ctx: Ctx) -> dict[str, Any]:
    doc = views.job(ctx.store, job_id)
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


@router.post("/jobs", status_code=202, summary="Queue a CSV already in input/ (needs the API token)")
def post_job(submission: Submission, ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    ctx.authorise(authorization)
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


@router.post("/jobs/{job_id}/cancel", status_code=202, summary="Cancel a queued or running job (needs the token)")
def cancel_job(job_id: str, ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    ctx.authorise(authorization)
    row = ctx.store.active(job_id)
    if row is None:
        raise HTTPException(409 if views.job(ctx.store, job_id) else 404, f"job {job_id!r} is not queued or running")
    if ctx.daemon is None:
        raise HTTPException(503, "no daemon in this process to cancel jobs")
    ctx.daemon.cancel(job_id)
    return {"job_id": job_id, "state": "cancelling"}
