"""The daemon answers on its unix socket and over HTTP, with the stable error shape."""
import http.client
import json
import os
import socket
import sqlite3
import subprocess

import pytest

from conftest import BIN, Daemon, make_repo, run


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def test_healthz_over_both_transports(daemon):
    status, headers, body = request(UnixHTTPConnection(daemon.socket), "GET", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, headers, body = request(http.client.HTTPConnection("127.0.0.1", daemon.port), "GET", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert headers["Content-Type"] == "application/json"


def test_version_as_root_on_socket(daemon):
    status, _, body = request(UnixHTTPConnection(daemon.socket), "GET", "/v1/version")
    assert status == 200
    j = json.loads(body)
    assert j["version"] and j["kind"] == "root"


def test_http_without_token_is_401_with_no_detail(daemon):
    status, headers, body = request(http.client.HTTPConnection("127.0.0.1", daemon.port), "GET", "/v1/version")
    assert status == 401
    assert json.loads(body) == {"error": {"code": "unauthorized", "message": "authentication required"}}
    assert headers.get("WWW-Authenticate") == "Bearer"


def test_error_shape_for_unknown_route_and_method(daemon):
    conn = UnixHTTPConnection(daemon.socket)
    status, _, body = request(conn, "GET", "/v1/nothing-here")
    assert status == 404
    err = json.loads(body)["error"]
    assert set(err) == {"code", "message"} and err["code"] == "not_found"
    status, _, body = request(UnixHTTPConnection(daemon.socket), "DELETE", "/healthz")
    assert status == 405 and json.loads(body)["error"]["code"] == "method_not_allowed"


def test_oversized_body_is_refused(daemon):
    # A route that takes a body: one that does not is refused (405) before the body is read.
    status, _, body = request(UnixHTTPConnection(daemon.socket), "POST", "/v1/tokens",
                              body=b"x" * (1024 * 1024 + 10))
    assert status == 413
    assert json.loads(body)["error"]["code"] == "too_large"


def test_cli_status_over_socket_and_http(daemon):
    p = daemon.cli("status", "--json")
    assert json.loads(p.stdout)["kind"] == "root"
    p = daemon.cli("status")
    assert "running" in p.stdout
    # Over HTTP without a token the CLI gets the 401 and says so.
    p = daemon.cli("status", via_http=True, check=False)
    assert p.returncode == 1
    assert "authentication required" in p.stderr


def test_cli_reports_missing_daemon(tmpdir_path):
    p = run("status", "--state", os.path.join(tmpdir_path, "nothing"), check=False)
    assert p.returncode == 3
    assert "daemon is not running" in p.stderr


def test_every_request_is_audited(daemon):
    request(UnixHTTPConnection(daemon.socket), "GET", "/v1/version")
    request(http.client.HTTPConnection("127.0.0.1", daemon.port), "GET", "/v1/version")
    db = sqlite3.connect(os.path.join(daemon.state, "state.db"))
    rows = db.execute("SELECT principal, interface, action, decision, outcome FROM audit ORDER BY seq").fetchall()
    db.close()
    assert ("root", "cli", "version.get", "allow", "200") in rows
    assert ("anonymous", "http", "version.get", "deny", "401") in rows


def test_second_daemon_on_same_state_is_refused(daemon, repo):
    p = subprocess.run([BIN, "serve", "--repo", repo, "--state", daemon.state, "--no-listen"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "another daemon" in p.stderr


def test_serve_errors_are_clear(tmpdir_path):
    p = run("serve", "--state", tmpdir_path, check=False)
    assert p.returncode == 2 and "--repo PATH is required" in p.stderr
    p = run("serve", "--repo", "/nonexistent/repo", "--state", tmpdir_path, check=False)
    assert p.returncode == 1 and "/nonexistent/repo" in p.stderr
    p = run("serve", "--repo", tmpdir_path, "--state", tmpdir_path + "/s", check=False)
    assert p.returncode == 1 and "is not a git repository" in p.stderr
    repo = make_repo(os.path.join(tmpdir_path, "repo"))
    p = run("serve", "--repo", repo, "--state", tmpdir_path + "/s", "--listen", "nonsense", check=False)
    assert p.returncode == 1 and "ADDRESS:PORT" in p.stderr


def test_stale_socket_is_replaced_after_crash(tmpdir_path, repo):
    d = Daemon(tmpdir_path, repo).start()
    d.stop(sig=9)
    assert os.path.exists(d.socket)  # left behind by the kill
    d2 = Daemon(tmpdir_path, repo).start()
    try:
        assert json.loads(d2.cli("status", "--json").stdout)["kind"] == "root"
    finally:
        d2.stop()


def test_every_verb_has_help():
    p = run("--help")
    section = p.stdout.split("Verbs:\n", 1)[1].split("\n\n", 1)[0]
    verbs = [l.split()[0] for l in section.splitlines() if l.strip()]
    assert "serve" in verbs
    for v in verbs:
        h = run(v, "--help")
        assert "Usage: branchbox" in h.stdout, v


def test_daemon_raises_its_open_file_soft_limit(tmpdir_path, repo):
    """A soft limit of 1024 (the usual default) would stop a few dozen environments."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(1024, hard)

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    d = Daemon(tmpdir_path, repo)
    real_popen = subprocess.Popen
    subprocess.Popen = lambda *a, **kw: real_popen(*a, preexec_fn=lower, **kw)
    try:
        d.start()
    finally:
        subprocess.Popen = real_popen
    try:
        limits = open(f"/proc/{d.proc.pid}/limits").read()
        line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
        assert line.split()[3:5] == [str(hard), str(hard)], line
    finally:
        d.stop()
