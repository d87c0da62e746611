"""The status API under Schemathesis (issue #16): no request built from its OpenAPI schema, valid or
not, with or without the token, gets a 5xx answer.

The job database is seeded as a daemon leaves it (a completed, a failed and a queued job, the daemon
running and its last scan fresh), so ``/health`` answers 200 and the cancel endpoint has a daemon:
the 503s those endpoints give by design are not what is tested here.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from jobqueue.share import Share
from jobqueue.store import QueueStore, now_iso, store_path

TOKEN = "s3cret-token"
BASE_URL = "http://127.0.0.1:8080"  # a Host the API answers to (the client's default "testserver" is refused)
ANSWER_TIMEOUT_S = 2  # an event stream of a job that has not ended is cut here; a hang fails the test


class Canceller:
    """The daemon's side of ``POST /jobs/{id}/cancel``: records what it was asked."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)


def seed(store: QueueStore, share_root: Path) -> None:
    """A completed, a failed and a queued job, and a daemon that scanned the share just now."""
    result = {"winner": {"size": 10, "algorithm": "ga", "fitness": 1.5}, "timings_s": {"load": 0.1}}
    common = {"share": str(share_root), "kind": "csv", "submitted_at": now_iso()}
    done = store.add(job_id="done", state="running", input_name="done.csv", **common)
    store.update(done, state="completed", progress=100.0, result_json=json.dumps(result), run_dir="output/run_1")
    broke = store.add(job_id="broke", state="running", input_name="broke.csv", **common)
    store.update(broke, state="failed", reason="input error: broke.csv, row 3: 'x' is not a number")
    store.add(job_id="waiting", state="queued", input_name="waiting.csv", **common)
    store.set_daemon(state="running", host="test", pid=1, started_at=now_iso(), last_scan=now_iso())


@pytest.fixture(scope="module")
def seeded_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """The API over a seeded job database, with the token set and a daemon to cancel jobs."""
    root = tmp_path_factory.mktemp("share")
    share = Share(root)
    share.ensure()
    (share.input / "desk.csv").write_text("Date,A\n2023-01-02,1\n2023-01-03,2\n")  # the schema's example input
    path = store_path(tmp_path_factory.mktemp("state"), share.identity(create=True))
    assert path is not None
    store = QueueStore(path)
    seed(store, root)
    store.close()
    return create_app(path, share, token=TOKEN, rescan_s=30, daemon=Canceller())


# The schema does not depend on the database or the share: it is read from an app that never opens them,
# so the operations are known when pytest collects (schemathesis.pytest.from_fixture, which would take the
# seeded app's, fails under pytest 9: it sets a private attribute pytest no longer has).
schema = schemathesis.openapi.from_dict(create_app(Path("no-store"), Share(Path("no-share"))).openapi())


@pytest.mark.timeout(120)
@schema.parametrize()
@settings(
    max_examples=150,
    deadline=timedelta(seconds=ANSWER_TIMEOUT_S * 2),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_no_request_gets_a_server_error(seeded_app: FastAPI, case: schemathesis.Case) -> None:
    """Each generated request twice: as generated (any Authorization header), and with the valid token."""
    call_both_ways(case, seeded_app)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("job_id", ["done", "broke", "waiting"])
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/jobs/{job_id}"), ("GET", "/jobs/{job_id}/events"), ("POST", "/jobs/{job_id}/cancel")]
)
def test_seeded_jobs_get_no_server_error(seeded_app: FastAPI, method: str, path: str, job_id: str) -> None:
    """The ids of the seeded jobs, which generated ids never hit: a job's document, its events, its cancelling."""
    call_both_ways(schema[path][method].Case(path_parameters={"job_id": job_id}), seeded_app)


def call_both_ways(case: schemathesis.Case, app: FastAPI) -> None:
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
        case.call_and_validate(
            base_url=BASE_URL, headers=headers, checks=[not_a_server_error], app=app, timeout=ANSWER_TIMEOUT_S
        )
