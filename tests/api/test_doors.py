"""The API's doors (docs/operations.md): the token, the Host header, cross-origin requests, and secrets.

Through FastAPI's test client (its Host is set per request), and once over real HTTP to ``heavyopt serve``.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from errors import ConfigError
from tests.api.test_app import client_for
from tests.conftest import free_port
from tests.jobqueue.conftest import SLOW_SETS, Env, wait_for

TOKEN = "tok-Zq8v1Lw3-never-shown"  # distinctive: found anywhere it would be a leak, not a coincidence
PASSWORD = "pw-K7x2Rr9u-never-shown"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOST = "127.0.0.1:8080"  # what client_for's requests carry


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """(path, method) of every route of ``app``, included routers flattened."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI ≥ 0.13x keeps included routers
    routes: list[Any] = list(flatten(app.routes)) if flatten else list(app.routes)
    return [(r.path, m) for r in routes for m in sorted(getattr(r, "methods", None) or ())]


def _changing(app: FastAPI) -> list[tuple[str, str]]:
    return [(path, method) for path, method in _routes(app) if method not in ("GET", "HEAD")]


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "some_job", path)


def _queued(env: Env) -> list[str]:
    return sorted(p.name for p in env.share.queue.glob("*.json"))


@pytest.mark.parametrize(("token", "expected"), [("", 403), (TOKEN, 401)])
def test_every_state_changing_route_needs_the_token(env: Env, token: str, expected: int) -> None:
    """A future endpoint that changes state without the token fails here, not in production."""
    client = client_for(env, token=token)
    changing = _changing(client.app)
    assert {("/jobs", "POST"), ("/jobs/{job_id}/cancel", "POST")} <= set(changing), changing
    (env.share.input / "x.csv").write_bytes(env.csv.read_bytes())
    body = {"input_file": "x.csv", "job_id": "forged"}  # a valid submission: only the token is missing
    for path, method in changing:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = client.request(method, _url(path), json=body, headers=headers)
            assert response.status_code == expected, (method, path, headers, response.text)
    assert _queued(env) == []


FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8080",
    "127.0.0.1.nip.io:8080",  # a public name that resolves to loopback: the DNS-rebinding case
    "localhost.evil.example",
    "localhost.:8080",
    "127.0.0.2:8080",
    "[::2]:8080",
    "127.0.0.1@evil.example",
    "127.0.0.1:8080/x",
    "",
]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_a_foreign_host_is_refused_at_every_endpoint(env: Env, host: str) -> None:
    client = client_for(env, token=TOKEN)
    (env.share.input / "x.csv").write_bytes(env.csv.read_bytes())
    routes = _routes(client.app)
    assert len(routes) >= 10 and ("/status", "GET") in routes
    for path, method in routes:
        response = client.request(
            method, _url(path), json={"input_file": "x.csv"}, headers={**AUTH, "Host": host}, follow_redirects=False
        )
        assert response.status_code == 400, (method, path, response.status_code)
        assert method == "HEAD" or "is not a name of this server" in response.json()["detail"]
    assert _queued(env) == []


def test_loopback_names_and_allowed_hosts_are_let_in(env: Env) -> None:
    plain = client_for(env)
    for host in ("127.0.0.1", "127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]", "[::1]:8080"):
        assert plain.get("/status", headers={"Host": host}).status_code == 200, host
    assert plain.get("/status", headers={"Host": "opt.example.com"}).status_code == 400

    app = create_app(
        env.store_path,
        env.share,
        allowed_hosts=("opt.example.com", "10.0.0.5:8080", "fe80::1", "0.0.0.0", "::"),
    )
    client = TestClient(app, base_url="http://opt.example.com")
    for host in ("opt.example.com", "OPT.Example.com:443", "10.0.0.5", "10.0.0.5:9000", "[fe80::1]:8080", HOST):
        assert client.get("/status", headers={"Host": host}).status_code == 200, host
    for host in ("0.0.0.0:8080", "[::]:8080", "other.example", "example.com"):  # a bind-all address is no name
        assert client.get("/status", headers={"Host": host}).status_code == 400, host

    for bad in ("http://opt.example.com", "opt.example.com/x", "user@opt.example.com", "*"):
        with pytest.raises(ConfigError, match="allowed API host"):
            create_app(env.store_path, env.share, allowed_hosts=(bad,))


CROSS_ORIGIN = [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},  # a sandboxed frame or a file:// page
    {"Origin": "http://127.0.0.1:9999"},  # another service on this machine: same site, another origin
    {"Origin": "http://localhost:8080"},  # the same server by another name is another origin
    {"Origin": "http://127.0.0.1"},  # port 80, not 8080
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": f"http://{HOST}"},
]


@pytest.mark.parametrize("headers", CROSS_ORIGIN)
def test_a_cross_origin_request_cannot_submit_or_cancel_even_with_the_token(env: Env, headers: dict[str, str]) -> None:
    client = client_for(env, token=TOKEN)
    (env.share.input / "x.csv").write_bytes(env.csv.read_bytes())
    response = client.post("/jobs", json={"input_file": "x.csv"}, headers={**AUTH, **headers})
    assert response.status_code == 403 and "may not change anything" in response.json()["detail"]
    assert client.post("/jobs/any/cancel", headers={**AUTH, **headers}).status_code == 403
    assert _queued(env) == []
    # Reads stay open (a browser hides the answer from other origins: no CORS headers are sent).
    read = client.get("/status", headers=headers)
    assert read.status_code == 200 and not any(h.startswith("access-control-") for h in read.headers)
    preflight = client.options(
        "/jobs", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code >= 400 and not any(h.startswith("access-control-") for h in preflight.headers)


@pytest.mark.parametrize(
    "headers", [{}, {"Origin": f"http://{HOST}"}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}]
)
def test_a_same_origin_or_non_browser_request_gets_in(env: Env, headers: dict[str, str]) -> None:
    client = client_for(env, token=TOKEN)
    (env.share.input / "x.csv").write_bytes(env.csv.read_bytes())
    response = client.post("/jobs", json={"input_file": "x.csv", "job_id": "in"}, headers={**AUTH, **headers})
    assert response.status_code == 202, response.text
    assert _queued(env) == ["in.json"]


FORM_BODIES = [
    ("text/plain", '{"input_file": "x.csv", "job_id": "forged", "pad": "="}'),  # <form enctype="text/plain">
    ("text/plain;charset=UTF-8", '{"input_file": "x.csv", "job_id": "forged"}'),  # fetch(url, {body: string})
    ("application/x-www-form-urlencoded", "input_file=x.csv&job_id=forged"),
    (
        "multipart/form-data; boundary=b",
        '--b\r\nContent-Disposition: form-data; name="input_file"\r\n\r\nx.csv\r\n--b--',
    ),
    (None, '{"input_file": "x.csv", "job_id": "forged"}'),  # fetch with a Blob body: no Content-Type at all
    ("application/jsonx", '{"input_file": "x.csv", "job_id": "forged"}'),
]


@pytest.mark.parametrize(("content_type", "body"), FORM_BODIES)
def test_only_a_json_body_can_submit(env: Env, content_type: str | None, body: str) -> None:
    """The body a browser sends without a CORS preflight (a form, a "simple" fetch) is refused."""
    client = client_for(env, token=TOKEN)
    (env.share.input / "x.csv").write_bytes(env.csv.read_bytes())
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    response = client.post("/jobs", content=body.encode(), headers=headers)
    assert response.status_code == 415, response.text
    assert _queued(env) == []
    ok = client.post(
        "/jobs",
        content=b'{"input_file": "x.csv", "job_id": "json"}',
        headers={**AUTH, "Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 202 and _queued(env) == ["json.json"]


def test_no_secret_in_answers_logs_or_metrics(env: Env, daemon, caplog: pytest.LogCaptureFixture) -> None:
    """The token and the database password are in no answer, no log line, no metric and no job file."""
    caplog.set_level(logging.DEBUG)
    closed = free_port()  # nothing listens there: the job falls back to its DuckDB file
    url = f"heavydb://admin:{PASSWORD}@127.0.0.1:{closed}/heavyai"
    d = daemon(*SLOW_SETS, "QUEUE.csv_drops=false", f"DATABASE.url={url}", "DATABASE.connect_timeout_s=1")
    assert PASSWORD in d.config.database.url  # the secret is really in the configuration
    client = client_for(env, d, token=TOKEN)
    (env.share.input / "api.csv").write_bytes(env.csv.read_bytes())
    answers: list[Any] = []

    def call(method: str, path: str, expected: int, **kwargs: Any) -> None:
        response = client.request(method, path, **kwargs)
        assert response.status_code == expected, (method, path, response.text)
        answers.append(response)

    submit = {"input_file": "api.csv", "job_id": "leak_check"}
    call("POST", "/jobs", 401, json=submit)
    call("POST", "/jobs", 401, json=submit, headers={"Authorization": f"Token {TOKEN}"})
    call("POST", "/jobs", 401, json=submit, headers={"Authorization": f"Bearer {TOKEN}x"})
    call("POST", "/jobs", 400, json=submit, headers={**AUTH, "Host": "evil.example"})
    call("POST", "/jobs", 403, json=submit, headers={**AUTH, "Origin": "http://evil.example"})
    call("POST", "/jobs", 415, content=json.dumps(submit), headers={**AUTH, "Content-Type": "text/plain"})
    call("POST", "/jobs", 422, json={"input_file": 5}, headers=AUTH)
    call("POST", "/jobs", 404, json={"input_file": "missing.csv"}, headers=AUTH)
    call("POST", "/jobs", 202, json=submit, headers=AUTH)
    call("POST", "/jobs", 409, json=submit, headers=AUTH)
    wait_for(lambda: (client.get("/jobs/leak_check").json().get("step") or "").startswith("search"), 90, "the search")
    call("GET", "/status", 200)
    call("GET", "/metrics", 200)
    call("POST", "/jobs/leak_check/cancel", 202, headers=AUTH)
    wait_for(lambda: client.get("/jobs/leak_check").json()["status"] == "failed", 60, "the job to be cancelled")
    call("POST", "/jobs/leak_check/cancel", 409, headers=AUTH)
    call("POST", "/jobs/nothing/cancel", 404, headers=AUTH)
    for path in ("/", "/status", "/jobs", "/jobs/leak_check", "/jobs/leak_check/events", "/health", "/metrics"):
        call("GET", path, 200)
    call("GET", "/openapi.json", 200)
    call("GET", "/jobs/nothing", 404)

    seen = [f"{r.request.method} {r.request.url}: {r.status_code} {dict(r.headers)} {r.text}" for r in answers]
    job_files = [p.read_text() for p in (env.root / "jobs").rglob("*.json")]
    assert "refused POST" in caplog.text and any('"leak_check"' in text for text in job_files)  # all were read
    seen += [caplog.text, *job_files]
    for secret in (TOKEN, PASSWORD):
        leaks = [text[max(0, text.index(secret) - 200) :][:400] for text in seen if secret in text]
        assert leaks == [], f"{secret} leaked"


def _raw(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_doors_of_heavyopt_serve_over_real_http(env: Env, watch) -> None:
    port = free_port()
    proc = watch(
        "API.token=" + TOKEN,
        "API.allowed_hosts=optimizer.desk.local, Desk-7",
        command="serve",
        args=("--port", str(port)),
    )
    (env.share.input / "x.csv").write_bytes(env.csv.read_bytes())
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "optimizer.desk.local", f"desk-7:{port}"):
        assert _raw(port, "GET", "/status", {"Host": host}) == 200, host
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.nip.io:{port}"):
        assert _raw(port, "GET", "/status", {"Host": host}) == 400, host
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:  # HTTP/1.0 may leave Host out
        s.sendall(b"GET /status HTTP/1.0\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 400 ")
    body = json.dumps({"input_file": "x.csv"}).encode()
    json_auth = {**AUTH, "Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
    assert _raw(port, "POST", "/jobs", {**json_auth, "Host": "evil.example"}, body) == 400
    assert _raw(port, "POST", "/jobs", {**json_auth, "Origin": "http://evil.example"}, body) == 403
    assert _raw(port, "POST", "/jobs", {**json_auth, "Content-Type": "text/plain"}, body) == 415
    assert _queued(env) == []
    assert _raw(port, "POST", "/jobs", {**json_auth, "Origin": f"http://127.0.0.1:{port}"}, body) == 202
    assert len(_queued(env)) == 1
    assert "refused POST '/jobs'" in proc.text() and TOKEN not in proc.text()  # the service's own log
