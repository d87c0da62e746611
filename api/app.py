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
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
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
    store = QueueView(store_path)  # read-only: jobs are submitted as files, cancelled through the daemon

    def authorise(authorization: str | None) -> None:
        if not token:
            raise HTTPException(403, "changing state through the API is off: the server has no API.token set")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401, "give the API token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
            )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return STATUS_PAGE

    @app.get("/status", summary="Idle or running, the current job's progress and step, and the queue")
    def get_status() -> dict[str, Any]:
        return views.status(store)

    @app.get("/jobs", summary="Jobs, newest first")
    def get_jobs(
        state: Annotated[State | None, Query(description="Only jobs in this state.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        return views.jobs(store, state, limit, offset)

    @app.get("/jobs/{job_id}", summary="One job: state, timestamps, step timings, progress, winner, run folder")
    def get_job(job_id: str) -> dict[str, Any]:
        doc = views.job(store, job_id)
        if doc is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return doc

    @app.get("/jobs/{job_id}/events", summary="Server-sent events: the job's progress until it ends")
    async def get_events(
        job_id: str, request: Request, last_event_id: Annotated[str | None, Header()] = None
    ) -> StreamingResponse:
        doc = views.job(store, job_id)
        if doc is None:
            raise HTTPException(404, f"no job {job_id!r}")
        seq = int(doc["seq"])
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0

        async def stream() -> AsyncIterator[str]:
            nonlocal after
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

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/health", summary="Liveness: the store answers and the daemon scanned the share recently")
    def get_health(response: Response) -> dict[str, Any]:
        ok, body = views.health(store, rescan_s)
        response.status_code = 200 if ok else 503
        return body

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def get_metrics() -> PlainTextResponse:
        return PlainTextResponse(views.metrics(store), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/jobs", status_code=202, summary="Queue a CSV already in input/ (needs the API token)")
    def post_job(submission: Submission, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        authorise(authorization)
        name = submission.input_file
        if not name or "/" in name or "\\" in name or name in (".", "..") or ":" in name:
            raise HTTPException(422, f"input_file {name!r}: give the name of a file directly in input/")
        job_id = submission.job_id or f"{job_stem(name, 60)}-{now_iso()[:19].replace(':', '').replace('-', '')}"
        if not JOB_ID.fullmatch(job_id):
            raise HTTPException(422, f"job_id {job_id!r}: use 1–100 letters, digits, '_' or '-'")
        if store.active(job_id) is not None or (share.queue / f"{job_id}.json").exists():
            raise HTTPException(409, f"job {job_id!r} is already queued or running")
        if not (share.input / name).is_file() or (share.input / name).is_symlink():
            raise HTTPException(404, f"input_file {name!r} is not in input/; copy it there first")
        request = {k: v for k, v in submission.model_dump().items() if v is not None}
        request.update(job_id=job_id, timestamp=now_iso(), submitted_by="api")
        if not write_json_exclusive(share.queue / f"{job_id}.json", request):
            raise HTTPException(409, f"job {job_id!r} is already queued or running")
        return {"job_id": job_id, "state": "submitted", "job_file": f"jobs/queue/{job_id}.json"}

    @app.post("/jobs/{job_id}/cancel", status_code=202, summary="Cancel a queued or running job (needs the token)")
    def cancel_job(job_id: str, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        authorise(authorization)
        row = store.active(job_id)
        if row is None:
            raise HTTPException(409 if views.job(store, job_id) else 404, f"job {job_id!r} is not queued or running")
        if daemon is None:
            raise HTTPException(503, "no daemon in this process to cancel jobs")
        daemon.cancel(job_id)
        return {"job_id": job_id, "state": "cancelling"}

    app.state.store = store
    return app
