"""Scoped tokens and the audit ledger against a real daemon.

The authorization matrix is generated from the daemon's own route table (GET /v1/routes),
so a route added later is covered without touching this file.
"""
import http.client
import json
import os
import secrets
import socket
import sqlite3
import stat
import subprocess
import time

import pytest

from conftest import BIN, Daemon, run

UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "authentication required"}}
ALL_VERBS = ("env:read,env:create,env:exec,env:write,env:destroy,proposal:submit,"
             "proposal:review,proposal:merge,audit:read,token:admin")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def call(daemon, method, path, token=None, body=None, unix=False):
    conn = UnixHTTPConnection(daemon.socket) if unix else http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    headers = {}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    hdrs = sorted((k, v) for k, v in r.getheaders() if k.lower() != "date")
    return r.status, hdrs, data


def mint(daemon, kind, name, envs, verbs, ttl=None, token=None, via_http=False, check=True):
    args = ["token", "create", f"--{kind}", name, "--verbs", verbs, "--json"]
    for e in envs:
        args += ["--env", e]
    if ttl:
        args += ["--ttl", ttl]
    p = daemon.cli(*args, token=token, via_http=via_http, check=check)
    if p.returncode != 0:
        return p
    minted = json.loads(p.stdout)
    daemon.minted.append(minted["token"])
    return minted


def add_environment(daemon, name, kind="preview"):
    db = sqlite3.connect(os.path.join(daemon.state, "state.db"), timeout=30)
    db.execute("INSERT OR IGNORE INTO environments (name, kind, branch, state, created_at, updated_at) "
               "VALUES (?, ?, ?, 'ready', 1, 1)", (name, kind, name))
    db.commit()
    db.close()


def audit_rows(daemon, where="1"):
    db = sqlite3.connect(os.path.join(daemon.state, "state.db"), timeout=30)
    rows = db.execute(f"SELECT seq, principal, token_id, action, resource, decision, reason, outcome "
                      f"FROM audit WHERE {where} ORDER BY seq").fetchall()
    db.close()
    return rows


def plaintext_hits(daemon, needles):
    """Where each needle occurs in the daemon's files: every regular file under its temporary
    dir (the state dir with the SQLite database and its WAL, the daemon's log, the repository),
    read whole in overlapping chunks. Returns ({needle: [paths]}, [every path scanned])."""
    enc = {n: n.encode() for n in needles}
    overlap = max(len(e) for e in enc.values()) - 1
    hits = {n: [] for n in needles}
    scanned = []
    for root, _, files in os.walk(daemon.tmp):
        for f in files:
            path = os.path.join(root, f)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            scanned.append(path)
            with open(path, "rb") as fh:
                tail = b""
                while chunk := fh.read(1 << 20):
                    buf = tail + chunk
                    for n, e in enc.items():
                        if e in buf and path not in hits[n]:
                            hits[n].append(path)
                    tail = buf[-overlap:]
    return hits, scanned


def assert_no_plaintext_token(daemon):
    """Every token this daemon handed out, used once more (unless the test stopped the
    daemon), is nowhere in its files."""
    tokens = set(daemon.minted)
    assert tokens, "no tokens to look for"
    if daemon.proc.poll() is None:
        for tok in tokens:
            call(daemon, "GET", "/v1/environments/pr-01/audit", token=tok)
    hits, scanned = plaintext_hits(daemon, tokens)
    assert daemon.log_path in scanned and os.path.join(daemon.state, "state.db") in scanned
    found = {path for paths in hits.values() for path in paths}
    assert not found, f"plaintext token in {sorted(found)}"


@pytest.fixture
def authd(daemon):
    """A daemon with tokens; at the end of each test, every token minted on it (by the fixture
    or the test) is searched for in plaintext in all its files."""
    daemon.minted = []
    for e in ("pr-01", "zz-01"):
        add_environment(daemon, e)
    t = {}
    t["full"] = mint(daemon, "human", "full", ["pr-*"], ALL_VERBS, "1h")
    t["reader"] = mint(daemon, "human", "reader", ["pr-*"], "env:read", "1h")
    t["agent"] = mint(daemon, "agent", "bot", ["pr-*"], "env:read,env:exec", "1h")
    t["expired"] = mint(daemon, "human", "expired", ["pr-*"], ALL_VERBS, "1s")
    t["revoked"] = mint(daemon, "human", "revoked", ["pr-*"], ALL_VERBS, "1h")
    daemon.cli("token", "revoke", t["revoked"]["id"])
    time.sleep(2.1)  # let the 1 s token expire
    daemon.tokens = t
    yield daemon
    assert_no_plaintext_token(daemon)


def malformed_tokens(good):
    flipped = good[:10] + ("a" if good[10] != "a" else "b") + good[11:]
    return {
        "garbage": "hello",
        "prefix": "xyz_" + good[4:],
        "short": good[:-1],
        "long": good + "a",
        "charset": good[:10] + "A" + good[11:],
        "checksum": flipped,
    }


def concrete_path(route, env_name):
    parts, n = [], 0
    for seg in route["pattern"].split("/"):
        if seg.startswith("{"):
            parts.append(env_name if n == route["env_param"] else "tok_doesnotexist")
            n += 1
        else:
            parts.append(seg)
    return "/".join(parts)


def routes(daemon):
    s, _, body = call(daemon, "GET", "/v1/routes", unix=True)
    assert s == 200
    return json.loads(body)["routes"]


def test_route_table_is_root_only(authd):
    s, _, _ = call(authd, "GET", "/v1/routes", token=authd.tokens["full"]["token"])
    assert s == 403
    assert any(r["env_param"] >= 0 for r in routes(authd)), "no environment-bound route to test"


def test_generated_matrix(authd):
    t = authd.tokens
    table = routes(authd)
    assert len(table) >= 10
    for r in table:
        m = r["method"]
        body = b"{}" if m in ("POST", "PUT", "PATCH") else None
        env_bound = r["env_param"] >= 0
        # Routes that destroy an environment run too: put the rows back before each one.
        for e, kind in (("pr-01", "preview"), ("zz-01", "preview"), ("main", "production")):
            add_environment(authd, e, kind)
        path = concrete_path(r, "pr-01")
        what = f"{m} {r['pattern']}"
        if r["public"]:
            assert call(authd, m, path)[0] == 200, what
            continue

        # No token, a malformed one, an expired one, a revoked one: the same bare 401.
        ref = call(authd, m, path, body=body)
        assert ref[0] == 401 and json.loads(ref[2]) == UNAUTHORIZED, what
        for name, bad in malformed_tokens(t["full"]["token"]).items():
            assert call(authd, m, path, token=bad, body=body) == ref, f"{what} malformed {name}"
        assert call(authd, m, path, token=t["expired"]["token"], body=body) == ref, f"{what} expired"
        assert call(authd, m, path, token=t["revoked"]["token"], body=body) == ref, f"{what} revoked"

        if r["root_only"]:
            assert call(authd, m, path, token=t["full"]["token"], body=body)[0] == 403, what
            continue

        # In scope, with the verb: passes authorization (the handler may still say 400/404
        # about the body or a made-up id, never 401/403, and never 404 for pr-01).
        s, _, data = call(authd, m, path, token=t["full"]["token"], body=body)
        assert s not in (401, 403), f"{what}: {s} {data}"
        if env_bound:
            assert s != 404, f"{what}: {data}"

        for e, kind in (("pr-01", "preview"), ("zz-01", "preview"), ("main", "production")):
            add_environment(authd, e, kind)

        # In scope without the verb: 403.
        if r["verb"] and r["verb"] != "env:read":
            s, _, _ = call(authd, m, path, token=t["reader"]["token"], body=body)
            assert s == 403, what

        if env_bound:
            for tok in (t["full"]["token"], t["reader"]["token"], t["agent"]["token"]):
                # Out of scope and existing == out of scope and absent, byte for byte.
                out = call(authd, m, concrete_path(r, "zz-01"), token=tok, body=body)
                absent = call(authd, m, concrete_path(r, "zz-02"), token=tok, body=body)
                assert out[0] == 404, what
                assert out[1] == absent[1], what
                assert out[2].replace(b"zz-01", b"NAME") == absent[2].replace(b"zz-02", b"NAME"), what
                # ...and the same as a name in scope that does not exist (handler's answer).
                missing = call(authd, m, concrete_path(r, "pr-02"), token=tok, body=body)
                assert missing[0] == 404, what
                assert out[1] == missing[1], what
                assert out[2].replace(b"zz-01", b"NAME") == missing[2].replace(b"pr-02", b"NAME"), what

            # Production does not exist for an agent, whatever happens.
            prod = call(authd, m, concrete_path(r, "main"), token=t["agent"]["token"], body=body)
            missing = call(authd, m, concrete_path(r, "pr-9"), token=t["agent"]["token"], body=body)
            assert prod[0] == 404 and prod[1] == missing[1], what
            assert prod[2].replace(b"main", b"NAME") == missing[2].replace(b"pr-9", b"NAME"), what
            # Root sees production.
            assert call(authd, m, concrete_path(r, "main"), body=body, unix=True)[0] != 404, what


def test_every_matrix_request_is_audited(authd):
    before = len(audit_rows(authd))
    t = authd.tokens
    call(authd, "GET", "/v1/environments/pr-01/audit", token=t["agent"]["token"])
    call(authd, "GET", "/v1/environments/zz-01/audit", token=t["agent"]["token"])
    call(authd, "GET", "/v1/environments/pr-01/audit", token=t["revoked"]["token"])
    call(authd, "GET", "/v1/environments/pr-01/audit", token="bbx_nonsense")
    call(authd, "GET", "/v1/audit", token=t["agent"]["token"])
    rows = audit_rows(authd)[before:]
    assert len(rows) == 5
    assert rows[0][1:] == ("bot", t["agent"]["id"], "environment.audit", "environment:pr-01", "allow", None, "200")
    assert rows[1][5:] == ("deny", "out of scope", "404")
    assert rows[2][5] == "deny" and "revoked" in rows[2][6] and rows[2][7] == "401"
    assert rows[3][5] == "deny" and "malformed" in rows[3][6] and rows[3][7] == "401"
    assert rows[4][5:] == ("deny", "this token may not audit:read", "403")


def test_agent_tokens_cannot_get_production_or_powers(authd):
    n = len(json.loads(authd.cli("token", "list", "--json").stdout)["tokens"])
    for envs in (["main"], ["*"], ["pr-1", "ma*"], ["m?in"]):
        p = mint(authd, "agent", "bad", envs, "env:read", "1h", check=False)
        assert p.returncode == 1 and "production" in p.stderr, envs
    for verb in ("proposal:review", "proposal:merge", "audit:read", "token:admin"):
        p = mint(authd, "agent", "bad", ["pr-1"], "env:read," + verb, "1h", check=False)
        assert p.returncode == 1 and verb in p.stderr, verb
    p = mint(authd, "agent", "bad", ["pr-1"], "env:read", None, check=False)
    assert p.returncode == 1 and "must expire" in p.stderr
    p = mint(authd, "agent", "bad", ["pr-1"], "env:read", "31d", check=False)
    assert p.returncode == 1
    assert len(json.loads(authd.cli("token", "list", "--json").stdout)["tokens"]) == n
    refused = [r for r in audit_rows(authd, "action = 'token.create'") if r[7] in ("400", "403")]
    assert len(refused) >= 10


def test_production_name_comes_from_options(tmpdir_path, repo):
    d = Daemon(tmpdir_path, repo, extra_args=["--production-branch", "prod",
                                              "--agent-token-max-ttl", "2h"]).start()
    d.minted = []
    try:
        ok = mint(d, "agent", "bot", ["main"], "env:read", "1h")
        p = mint(d, "agent", "bot", ["pro*"], "env:read", "1h", check=False)
        assert p.returncode == 1 and "'prod'" in p.stderr
        s, _, body = call(d, "GET", "/v1/environments/prod/audit", token=ok["token"])
        assert s == 404
        p = mint(d, "agent", "bot", ["pr-1"], "env:read", "3h", check=False)
        assert p.returncode == 1 and "7200 seconds" in p.stderr
        assert_no_plaintext_token(d)
    finally:
        d.stop()


def test_minting_is_never_wider_than_self(authd):
    admin = mint(authd, "human", "admin", ["pr-*"], "env:read,env:exec,token:admin", "1h")
    tok = admin["token"]
    for envs, verbs, ttl, why in ((["*"], "env:read", "10m", "scope"),
                                   (["zz-01"], "env:read", "10m", "scope"),
                                   (["pr-*", "q*"], "env:read", "10m", "scope"),
                                   (["pr-1"], "env:write", "10m", "env:write"),
                                   (["pr-1"], "env:read", "2h", "outlive"),
                                   (["pr-1"], "env:read", None, "outlive")):
        p = mint(authd, "human", "child", envs, verbs, ttl, token=tok, via_http=True, check=False)
        assert p.returncode == 1 and why in p.stderr, (envs, verbs, ttl, p.stderr)
    child = mint(authd, "agent", "child", ["pr-1"], "env:read", "10m", token=tok, via_http=True)
    s, _, _ = call(authd, "GET", "/v1/environments/pr-01/audit", token=child["token"])
    assert s == 404  # pr-01 is not pr-1: invisible
    # A token without token:admin mints nothing, lists nothing, revokes nothing.
    reader = authd.tokens["reader"]["token"]
    p = mint(authd, "agent", "x", ["pr-1"], "env:read", "10m", token=reader, via_http=True, check=False)
    assert p.returncode == 1
    assert authd.cli("token", "list", token=reader, via_http=True, check=False).returncode == 1
    assert authd.cli("token", "revoke", child["id"], token=reader, via_http=True, check=False).returncode == 1
    # The admin token sees and revokes what it minted, and only that.
    listed = json.loads(authd.cli("token", "list", "--json", token=tok, via_http=True).stdout)["tokens"]
    assert [x["id"] for x in listed] == [child["id"]]
    p = authd.cli("token", "revoke", authd.tokens["full"]["id"], token=tok, via_http=True, check=False)
    assert p.returncode == 1 and "not found" in p.stderr


def test_revocation_holds_from_the_next_request(authd):
    tok = mint(authd, "agent", "short", ["pr-*"], "env:read", "1h")
    path = "/v1/environments/pr-01/audit"
    assert call(authd, "GET", path, token=tok["token"])[0] == 200
    assert call(authd, "GET", path, token=tok["token"])[0] == 200
    authd.cli("token", "revoke", tok["id"])
    assert call(authd, "GET", path, token=tok["token"])[0] == 401
    rows = audit_rows(authd, f"action = 'token.revoke' AND resource = 'token:{tok['id']}'")
    assert len(rows) == 1 and rows[0][7] == "200"


def test_token_on_unix_socket_is_that_token(authd):
    p = authd.cli("status", "--json", token=authd.tokens["agent"]["token"])
    assert json.loads(p.stdout)["kind"] == "agent"
    p = authd.cli("status", token="bbx_broken", check=False)
    assert p.returncode == 1 and "authentication required" in p.stderr
    assert json.loads(authd.cli("status", "--json").stdout)["kind"] == "root"
    # Root on the socket who sends an Authorization header is judged by it, even an empty one.
    for hdr in ("Bearer ", "Bearer bbx_x", "Basic cm9vdDo="):
        conn = UnixHTTPConnection(authd.socket)
        conn.request("GET", "/v1/version", headers={"Authorization": hdr})
        r = conn.getresponse()
        assert r.status == 401 and json.loads(r.read()) == UNAUTHORIZED, hdr
        conn.close()


def test_cli_create_prints_token_alone(authd):
    p = authd.cli("token", "create", "--human", "carol", "--env", "pr-1", "--verbs", "env:read")
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bbx_")
    authd.minted.append(lines[0])
    assert "shown only this once" in p.stderr and lines[0] not in p.stderr
    listing = authd.cli("token", "list").stdout
    assert "carol" in listing and lines[0] not in listing


def test_bad_input_is_400_or_401_and_audited(authd):
    before = len(audit_rows(authd))
    tok = authd.tokens["full"]["token"]
    cases = [
        ({"kind": "agent", "name": "x", "scopes": ["pr-1"], "verbs": ["env:fly"], "ttl_seconds": 60}, "unknown verb"),
        ({"kind": "agent", "name": "x", "scopes": ["pr/1"], "verbs": ["env:read"], "ttl_seconds": 60}, "not allowed"),
        ({"kind": "agent", "name": "x", "scopes": ["a" * 64], "verbs": ["env:read"], "ttl_seconds": 60}, "1 to 63"),
        ({"kind": "robot", "name": "x", "scopes": ["pr-1"], "verbs": ["env:read"]}, "kind"),
        ({"kind": "human", "name": "x", "scopes": ["pr-1"], "verbs": ["env:read"], "extra": 1}, "unknown field"),
        (b"{not json", "line 1"),
    ]
    for body, msg in cases:
        s, _, data = call(authd, "POST", "/v1/tokens", token=tok, body=body)
        assert s == 400 and msg in json.loads(data)["error"]["message"], (body, data)
    rows = audit_rows(authd)[before:]
    assert len(rows) == len(cases) and all(r[7] == "400" for r in rows)
    n = len(json.loads(authd.cli("token", "list", "--json").stdout)["tokens"])
    assert n == len(authd.tokens)  # nothing was created


def test_oversized_headers_are_refused_and_audited(authd):
    before = len(audit_rows(authd))
    with socket.create_connection(("127.0.0.1", authd.port), timeout=30) as s:
        s.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
        status = s.recv(64)
    assert b" 431 " in status
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(audit_rows(authd)) == before:
        time.sleep(0.05)
    rows = audit_rows(authd)[before:]
    assert rows and rows[-1][4] == "/v1/version" and rows[-1][5] == "deny"
    assert "HTTP layer" in rows[-1][6]


def test_abandoned_request_is_audited(authd):
    # Authenticated, so the daemon waits for the body (without a token it would answer 401
    # from the headers alone and never read it).
    before = len(audit_rows(authd))
    tok = authd.tokens["full"]
    with socket.create_connection(("127.0.0.1", authd.port), timeout=30) as s:
        s.sendall(b"POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  tok["token"].encode() + b"\r\nContent-Length: 100\r\n\r\n{\"kind\"")
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(audit_rows(authd)) == before:
        time.sleep(0.05)
    rows = audit_rows(authd)[before:]
    assert rows and rows[-1][4] == "/v1/tokens" and rows[-1][5] == "deny"
    assert "closed before" in rows[-1][6]
    # The record names who it was and what was asked.
    assert rows[-1][1:4] == ("full", tok["id"], "token.create")


def test_unauthenticated_body_is_not_read(authd):
    """Refused from the headers: answered at once, the announced body never read."""
    before = len(audit_rows(authd))
    with socket.create_connection(("127.0.0.1", authd.port), timeout=30) as s:
        s.sendall(b"POST /v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n{")
        out = b""
        while True:
            k = s.recv(65536)
            if not k:
                break
            out += k
    assert out.startswith(b"HTTP/1.1 401 ")
    rows = audit_rows(authd)[before:]
    assert [(r[3], r[5], r[7]) for r in rows] == [("token.create", "deny", "401")]


def test_refused_mint_is_a_denial(authd):
    before = len(audit_rows(authd))
    p = mint(authd, "agent", "bad", ["main"], "env:read", "1h", check=False)
    assert p.returncode == 1
    rows = audit_rows(authd)[before:]
    assert rows[-1][3] == "token.create" and rows[-1][5] == "deny" and rows[-1][7] == "403"
    assert "production" in rows[-1][6]


def test_audit_log_and_env_filter(authd):
    call(authd, "GET", "/v1/environments/pr-01/audit", token=authd.tokens["agent"]["token"])
    p = authd.cli("audit", "log", "--env", "pr-01", "--json")
    recs = json.loads(p.stdout)["records"]
    assert recs and all(r["resource"] == "environment:pr-01" for r in recs)
    p = authd.cli("audit", "log", "--limit", "2", "--json")
    assert len(json.loads(p.stdout)["records"]) == 2
    p = authd.cli("audit", "log", "--since", "1h")
    assert "token.create" in p.stdout
    p = authd.cli("audit", "log", "--limit", "0", check=False)
    assert p.returncode == 1 and "limit" in p.stderr
    # The agent cannot read the ledger, not even through the CLI.
    p = authd.cli("audit", "log", token=authd.tokens["agent"]["token"], via_http=True, check=False)
    assert p.returncode == 1


def test_production_audit_exists_once_deployed(authd):
    """Production answers like any environment: 404 before its first deploy leaves a row,
    200 after (the route and the dispatcher share one idea of "exists")."""
    assert call(authd, "GET", "/v1/environments/main/audit", unix=True)[0] == 404
    add_environment(authd, "main", kind="production")
    assert call(authd, "GET", "/v1/environments/main/audit", unix=True)[0] == 200


def test_audit_list_leaves_out_invisible_environments(authd):
    full = authd.tokens["full"]["token"]  # audit:read, scope pr-*
    assert call(authd, "GET", "/v1/environments/zz-01/audit", unix=True)[0] == 200
    assert call(authd, "GET", "/v1/environments/pr-01/audit", token=full)[0] == 200
    s, _, body = call(authd, "GET", "/v1/audit?limit=1000", token=full)
    resources = {r["resource"] for r in json.loads(body)["records"]}
    assert "environment:pr-01" in resources and "environment:zz-01" not in resources
    out = call(authd, "GET", "/v1/audit?env=zz-01", token=full)
    absent = call(authd, "GET", "/v1/audit?env=zz-99", token=full)
    assert out == absent and json.loads(out[2]) == {"records": []}
    s, _, body = call(authd, "GET", "/v1/audit?env=zz-01", unix=True)
    assert json.loads(body)["records"]


def test_checkpoint_and_offline_verify(authd, tmpdir_path):
    cp = os.path.join(tmpdir_path, "cp.json")
    authd.cli("audit", "checkpoint", "--out", cp)
    j = json.load(open(cp))
    assert set(j) >= {"size", "head_hash", "time", "key_id", "public_key", "signature"}
    assert authd.cli("audit", "pubkey").stdout.strip() == j["public_key"]
    assert "valid" in authd.cli("audit", "verify", "--checkpoint", cp).stdout
    s, _, body = call(authd, "GET", "/v1/audit/verify", token=authd.tokens["full"]["token"])
    assert s == 200 and json.loads(body)["valid"] is True
    authd.stop()
    db = os.path.join(authd.state, "state.db")
    p = run("audit", "verify", "--db", db, "--checkpoint", cp)
    assert "checkpoint valid" in p.stdout
    # Rewrite one record: the chain breaks at it.
    con = sqlite3.connect(db)
    con.execute("UPDATE audit SET principal = 'mallory' WHERE seq = 3")
    con.commit()
    con.close()
    p = run("audit", "verify", "--db", db, check=False)
    assert p.returncode == 1 and "seq 3" in p.stderr
    # Truncation below the checkpoint.
    con = sqlite3.connect(db)
    con.execute("DELETE FROM audit WHERE seq >= 3")
    con.commit()
    con.close()
    assert run("audit", "verify", "--db", db).returncode == 0
    p = run("audit", "verify", "--db", db, "--checkpoint", cp, check=False)
    assert p.returncode == 1 and "truncated" in p.stderr
    # A forged checkpoint.
    j["size"] = 2
    json.dump(j, open(cp, "w"))
    p = run("audit", "verify", "--db", db, "--checkpoint", cp, check=False)
    assert p.returncode == 1 and "signature" in p.stderr


def test_no_record_no_answer(authd):
    """If the ledger cannot be written, the request fails and changes nothing."""
    db = sqlite3.connect(os.path.join(authd.state, "state.db"), timeout=30)
    db.execute("CREATE TRIGGER audit_blocked BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'blocked'); END")
    db.commit()
    try:
        s, _, body = call(authd, "GET", "/v1/environments/pr-01/audit", token=authd.tokens["full"]["token"])
        assert s == 500 and json.loads(body)["error"]["code"] == "audit_unavailable"
        n = db.execute("SELECT count(*) FROM tokens").fetchone()[0]
        s, _, body = call(authd, "POST", "/v1/tokens", unix=True,
                          body={"kind": "human", "name": "ghost", "scopes": ["pr-1"], "verbs": ["env:read"]})
        assert s == 500, body
        assert b"bbx_" not in body
        assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == n
    finally:
        db.execute("DROP TRIGGER audit_blocked")
        db.commit()
        db.close()
    assert call(authd, "GET", "/v1/environments/pr-01/audit", token=authd.tokens["full"]["token"])[0] == 200
    assert authd.cli("audit", "verify").returncode == 0


def test_keys_are_private(authd):
    for k in ("token.key", "audit-ed25519.key"):
        st = os.stat(os.path.join(authd.state, "keys", k))
        assert st.st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(authd.state, "keys")).st_mode & 0o777 == 0o700


def test_plaintext_scan_finds_a_planted_secret(authd):
    """Control for the scan every authd test ends with: it finds a known secret planted where
    a token could leak (a database row, so in the WAL or the database file, and a nested
    file in the state dir) and reads the daemon's log; the tokens are nowhere."""
    secret = "bbx_control_" + secrets.token_hex(16)
    db = sqlite3.connect(os.path.join(authd.state, "state.db"), timeout=30)
    db.execute("CREATE TABLE scan_control (v TEXT)")
    db.execute("INSERT INTO scan_control VALUES (?)", (secret,))
    db.commit()
    db.close()
    nested = os.path.join(authd.state, "scan-control", "deeper")
    os.makedirs(nested)
    with open(os.path.join(nested, "file"), "w") as f:
        f.write(f"before {secret} after\n")
    hits, scanned = plaintext_hits(authd, [secret] + authd.minted)
    db_files = {os.path.join(authd.state, "state.db" + x) for x in ("", "-wal")}
    assert set(hits[secret]) & db_files, hits[secret]
    assert os.path.join(nested, "file") in hits[secret], hits[secret]
    assert authd.log_path in scanned
    assert any(f.endswith("-wal") for f in os.listdir(authd.state)), "expected a live WAL to search"
    assert not any(hits[tok] for tok in authd.minted), hits
