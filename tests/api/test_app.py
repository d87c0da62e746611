"""The status API through FastAPI's test client, over a daemon running real jobs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api import views
from api.app import create_app
from jobqueue.daemon import Daemon
from tests.jobqueue.conftest import SLOW_SETS, Env, wait_for

TOKEN = "s3cret-token"


def client_for(env: Env, d: Daemon | None = None, token: str = "") -> TestClient:
    app = create_app(env.store_path, env.share, token=token, rescan_s=2, daemon=d)
    return TestClient(app, base_url="http://127.0.0.1:8080")  # a Host the API answers to (not "testserver")


def _completed(env: Env, daemon: Callable[..., Daemon]) -> tuple[TestClient, str]:
    daemon()
    env.drop("desk.csv")
    job_id = wait_for(lambda: [p.stem for p in env.share.completed.glob("*.json")], 90, "a job")[0]
    return client_for(env), job_id


def test_status_jobs_job_health_metrics_after_a_job(env: Env, daemon) -> None:
    client, job_id = _completed(env, daemon)
    status = wait_for(lambda: (s := client.get("/status").json())["status"] == "idle" and s, 10, "idle")
    assert status["progress"] == 0.0 and status["current_step"] == "" and status["job"] is None
    assert status["queue"] == [] and status["daemon"]["state"] == "running"

    listing = client.get("/jobs").json()
    assert listing["total"] == 1 and listing["items"][0]["job_id"] == job_id
    assert listing["items"][0]["state"] == "completed" and listing["items"][0]["run_folder"].startswith("output/run_")
    assert client.get("/jobs", params={"state": "failed"}).json()["total"] == 0
    assert client.get("/jobs", params={"state": "bogus"}).status_code == 422
    assert client.get("/jobs", params={"limit": 0}).status_code == 422

    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "completed" and job["progress"] == 100.0
    assert set(job["timings_s"]) >= {"load", "store", "ulta", "fetch", "correlation", "search"}
    assert job["winner"]["size"] in (10, 11) and job["output_folder"] == listing["items"][0]["run_folder"]
    assert job["validation"]["method"] == "holdout" and job["in_sample_winner"]["size"] in (10, 11)
    assert listing["items"][0]["verdict"] == job["validation"]["verdict"]
    # Worked out apart from the daemon: what this test did (desk.csv dropped once, no job file) and what the
    # job's own process wrote to its run folder. The API and the result file on the share must both say it.
    summary = json.loads((env.root / job["output_folder"] / "execution_summary.json").read_text())
    winner_keys = ("size", "algorithm", "fitness", "metrics", "strategies")  # docs/operations.md, the result file
    expected = {
        "job_id": job_id,
        "status": "completed",
        "input_file": "desk.csv",
        "archived_input": f"archive/{job_id}/desk.csv",
        "attempts": 1,
        "reason": None,
        "duplicate_of": None,
        "request": None,
        "winner": {k: summary["winner"][k] for k in winner_keys},
        "in_sample_winner": {k: summary["in_sample_winner"][k] for k in winner_keys},
        "timings_s": summary["timings_s"],
        "strategies": summary["input"]["strategies"],
        "days": summary["input"]["days"],
        "inverted": summary["ulta"]["inverted"],
        "evaluations": sum(r["evaluations"] for r in summary["results"]),
    }
    on_share = json.loads((env.share.completed / f"{job_id}.json").read_text())
    assert {k: job[k] for k in expected} == expected
    assert {k: on_share[k] for k in expected} == expected
    assert set(job) - set(on_share) == {"seq", "step", "progress", "eta_s", "submissions"}  # the API's live fields
    assert client.get("/jobs/no-such-job").status_code == 404

    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["store"] == "reachable"

    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    jobs = {s.labels["state"]: s.value for s in families["heavyopt_jobs"].samples}
    assert jobs["completed"] == 1 and jobs["running"] == 0
    assert families["heavyopt_queue_depth"].samples[0].value == 0
    steps = {s.labels["step"] for s in families["heavyopt_step_duration_seconds"].samples}
    assert {"load", "search"} <= steps
    assert families["heavyopt_evaluations"].samples[0].value > 0  # the counter family drops "_total"
    assert families["heavyopt_evaluations_per_second"].samples[0].value > 0

    assert "/status" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "<title>Heavy Optimizer" in page.text


def test_health_is_503_when_the_daemon_is_not_running(env: Env, daemon) -> None:
    d = daemon()
    d.stop.set()
    wait_for(lambda: d.store is None, 30, "the daemon to stop")
    response = client_for(env).get("/health")
    assert response.status_code == 503 and response.json()["daemon"] == "stopped"


def test_progress_moves_through_the_steps_and_the_sizes(env: Env, daemon) -> None:
    daemon(*SLOW_SETS)
    client = client_for(env)
    env.drop("slow.csv")
    seen: list[tuple[str, float]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        s = client.get("/status").json()
        if s["job"]:
            seen.append((s["current_step"], s["progress"]))
        elif seen:
            break
        time.sleep(0.05)
    progress = [p for _, p in seen]
    assert progress == sorted(progress), "progress went backwards"
    assert len(set(progress)) >= 10, seen
    steps = {step for step, _ in seen}
    assert any(step.startswith("search: size ") for step in steps), steps
    assert len({step for step in steps if step.startswith("search: size ")}) >= 5
    assert min(progress) < 100 and max(progress) > 0


def test_server_sent_events_follow_a_job_to_its_end(env: Env, daemon) -> None:
    daemon(*SLOW_SETS)
    client = client_for(env)
    env.drop("sse.csv")
    job_id = wait_for(lambda: client.get("/jobs").json()["items"], 30, "a job")[0]["job_id"]
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    with client.stream("GET", f"/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[len("data: ") :])))
                if kind == "end":
                    break
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end" and events[-1][1]["state"] == "completed"
    assert "running" in kinds and "completed" in kinds
    progress = [e["progress"] for k, e in events if k == "progress"]
    assert len(progress) >= 5 and progress == sorted(progress)
    # Resuming from an event id sends only what came after it.
    last_id = events[-2][1]["id"]
    with client.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(last_id - 1)}) as response:
        resumed = [line for line in response.iter_lines() if line.startswith("id: ")]
    assert resumed == [f"id: {last_id}"]


def test_state_changing_endpoints_are_off_without_a_token(env: Env, daemon) -> None:
    d = daemon()
    env.drop("x.csv")
    client = client_for(env, d, token="")
    assert client.post("/jobs", json={"input_file": "x.csv"}).status_code == 403
    assert client.post("/jobs/any/cancel").status_code == 403


def test_submit_and_cancel_with_the_token(env: Env, daemon) -> None:
    d = daemon(*SLOW_SETS, "QUEUE.csv_drops=false")  # files in input/ wait for a job file or POST /jobs
    client = client_for(env, d, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    (env.share.input / "api.csv").write_bytes(env.csv.read_bytes())
    # Wrong or missing token.
    assert client.post("/jobs", json={"input_file": "api.csv"}).status_code == 401
    assert (
        client.post("/jobs", json={"input_file": "api.csv"}, headers={"Authorization": "Bearer no"}).status_code == 401
    )
    # No paths: only a plain name inside input/.
    for bad in ("../x.csv", "/etc/passwd", "..", "C:\\x.csv", "sub/x.csv"):
        assert client.post("/jobs", json={"input_file": bad}, headers=auth).status_code == 422, bad
    assert client.post("/jobs", json={"input_file": "missing.csv"}, headers=auth).status_code == 404
    response = client.post("/jobs", json={"input_file": "api.csv", "job_id": "api_job_1"}, headers=auth)
    assert response.status_code == 202, response.text
    assert response.json()["job_id"] == "api_job_1"
    wait_for(lambda: client.get("/jobs/api_job_1").json().get("status") == "running", 60, "running")
    assert client.post("/jobs", json={"input_file": "api.csv", "job_id": "api_job_1"}, headers=auth).status_code == 409
    assert client.post("/jobs/api_job_1/cancel", headers=auth).status_code == 202
    job = wait_for(lambda: (j := client.get("/jobs/api_job_1").json())["status"] == "failed" and j, 60, "cancelled")
    assert job["reason"] == "cancelled through the status API"
    assert client.post("/jobs/api_job_1/cancel", headers=auth).status_code == 409
    assert client.post("/jobs/nothing/cancel", headers=auth).status_code == 404


@pytest.mark.parametrize("path", ["/jobs/..%2F..%2Fetc%2Fpasswd", "/jobs/%2Fetc%2Fpasswd", "/../../etc/passwd"])
def test_no_endpoint_reads_a_path(env: Env, path: str) -> None:
    response = client_for(env).get(path)
    assert response.status_code == 404
    assert "root:" not in response.text


def test_metrics_sample_names_types_and_values() -> None:
    """The scrape keeps the names of the hand-written exposition (a counter's sample ends in ``_total``)."""

    def row(job_id: str, state: str, progress: float | None = 0.0, result: Any = None) -> dict[str, Any]:
        return {"job_id": job_id, "state": state, "progress": progress, "duplicate_of": None, "result_json": result}

    done = json.dumps({"timings_s": {"load": 0.1234567, "search": 2.5}, "evaluations": 1000})
    rows = [row("a", "completed", 100, done), row("b", "running", 37.25), row("c", "running", None), row("d", "queued")]
    store = type("Store", (), {"jobs": lambda self, state=None: rows})()
    samples = {
        (s.name, tuple(s.labels.values())): s.value
        for f in text_string_to_metric_families(views.metrics(store).decode())
        for s in f.samples
    }
    assert samples == {
        **{("heavyopt_jobs", (state,)): n for state, n in zip(views.STATES, (0, 1, 2, 1, 0), strict=True)},
        ("heavyopt_queue_depth", ()): 1,
        ("heavyopt_job_progress_percent", ("b",)): 37.25,
        ("heavyopt_job_progress_percent", ("c",)): 0,
        ("heavyopt_step_duration_seconds_count", ("load",)): 1,
        ("heavyopt_step_duration_seconds_sum", ("load",)): 0.123457,
        ("heavyopt_step_duration_seconds_count", ("search",)): 1,
        ("heavyopt_step_duration_seconds_sum", ("search",)): 2.5,
        ("heavyopt_evaluations_total", ()): 1000,
        ("heavyopt_evaluations_per_second", ()): 400,
        ("heavyopt_last_job_evaluations_per_second", ()): 400,
    }
    types = {f.name: f.type for f in text_string_to_metric_families(views.metrics(store).decode())}
    assert types["heavyopt_evaluations"] == "counter" and types["heavyopt_step_duration_seconds"] == "summary"


def test_the_latest_result_and_its_report_page_by_job_id(env: Env, daemon) -> None:
    client, job_id = _completed(env, daemon)
    latest = wait_for(lambda: client.get("/status").json()["latest"], 10, "the latest result")
    assert latest["job_id"] == job_id and latest["report"] == f"jobs/{job_id}/report.html"
    job = client.get(f"/jobs/{job_id}").json()
    assert latest["headline"] == job["validation"]["headline"] and latest["verdict"] == job["validation"]["verdict"]
    page = client.get(f"/{latest['report']}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        page.headers["x-content-type-options"] == "nosniff"
        and "default-src 'none'" in page.headers["content-security-policy"]
    )
    assert page.text == (env.root / job["output_folder"] / "report.html").read_text(encoding="utf-8")
    chart = client.get(f"/jobs/{job_id}/equity_curves.png")  # the page's neighbours, by name, as it links them
    assert chart.status_code == 200 and chart.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/jobs/{job_id}/performance_report.txt").status_code == 200
    # Only a file of the job's own folder, by a plain name: never a path, never another file type.
    (env.root / "secret.txt").write_text("not for the API")
    folder = env.root / job["output_folder"]
    (folder / "notes.txt").symlink_to(env.root / "secret.txt")  # a link anyone on the share could make
    (folder / "deeper.md").symlink_to(folder / "notes.txt")
    for name in ("..%2Fsecret.txt", "notes.txt", "deeper.md", ".hidden.txt", "report.html%00.png", "run.sh", "x"):
        response = client.get(f"/jobs/{job_id}/{name}")
        assert response.status_code == 404 and "not for the API" not in response.text, name
    assert client.get("/jobs/no-such-job/report.html").status_code == 404


def test_the_time_left_on_a_real_job(env: Env, daemon) -> None:
    """The estimate at each moment against the time the job then really took (printed: docs/operations.md)."""
    daemon(*SLOW_SETS)
    client = client_for(env)
    env.drop("slow.csv")
    seen: list[tuple[float, float, float | None]] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        s = client.get("/status").json()
        if s["job"]:
            seen.append((time.monotonic(), s["job"]["progress"], s["job"]["eta_s"]))
        elif seen:
            break
        time.sleep(0.1)
    finished = time.monotonic()
    assert seen and all(eta is None for _, p, eta in seen if p < 5)
    signed = [(eta - (finished - t)) / (finished - t) for t, p, eta in seen if eta is not None and 30 <= p <= 90]
    errors = [abs(e) for e in signed]
    assert len(errors) >= 5, seen
    errors.sort()
    median, worst = errors[len(errors) // 2], errors[-1]
    under = sum(e < 0 for e in signed) / len(signed)
    print(f"time left: median error {median:.0%}, worst {worst:.0%}, {under:.0%} under, {len(errors)} samples, 30–90 %")
    assert median <= 0.5 and worst <= 1.0
