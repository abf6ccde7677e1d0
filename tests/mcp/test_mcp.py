"""The MCP server on a real daemon: tools from the operations table, authorization and audit like
REST, both protocol eras, and the refusals (batches, foreign Origin/Host, sessions that do not
authenticate). One echo-project daemon (production deployed, no services) for the module."""
import json
import os
import re
import time

import pytest

from mcphelp import (INIT, META, MODERN, Stdio, add_environment, audit, mint, post, rpc,
                      run)

from echo_project import start_echo_daemon, stop_echo_daemon  # noqa: E402

ALL_VERBS = "env:read,env:create,env:exec,env:write,env:destroy"


@pytest.fixture(scope="module")
def echo():
    d = start_echo_daemon()
    d.minted = []
    add_environment(d, "pr-a")
    add_environment(d, "pr-b")
    yield d
    stop_echo_daemon(d)


@pytest.fixture
def root(echo):
    c = Stdio(echo)
    assert c.initialize()["result"]["protocolVersion"] == "2025-11-25"
    yield c
    c.close()


def tool_names(reply):
    return {t["name"] for t in reply["result"]["tools"]}


def test_tools_come_from_operation_rows(root):
    tools = {t["name"]: t for t in root.request("tools/list")["result"]["tools"]}
    for name in ("environment_list", "environment_info", "environment_create",
                 "environment_destroy", "environment_run", "environment_logs", "budget_status"):
        assert name in tools, name
    for t in tools.values():
        assert t["inputSchema"]["type"] == "object"
        assert t["inputSchema"]["additionalProperties"] is False, t["name"]
        assert t["outputSchema"]["type"] == "object"
        assert t["description"]
        assert not t["name"].startswith("test_")  # fixtures never come from the daemon
    assert tools["environment_info"]["annotations"]["readOnlyHint"] is True
    assert tools["environment_info"]["annotations"]["destructiveHint"] is False
    assert tools["environment_destroy"]["annotations"]["destructiveHint"] is True
    assert tools["environment_run"]["annotations"]["readOnlyHint"] is False
    assert tools["environment_run"]["inputSchema"]["required"] == ["name", "command"]


def test_run_answers_exit_code_and_output(root):
    r = root.call("environment_run", {"name": "main", "command": ["sh", "-c", "echo hi; exit 3"]})
    res = r["result"]
    assert res["isError"] is True
    assert res["structuredContent"]["exit_code"] == 3
    assert res["structuredContent"]["output"] == "hi\n"
    assert json.loads(res["content"][0]["text"]) == res["structuredContent"]
    r = root.call("environment_run", {"name": "main", "command": ["true"]})
    assert r["result"]["isError"] is False and r["result"]["structuredContent"]["exit_code"] == 0
    # A schema violation is the row's own error, naming the field.
    r = root.call("environment_run", {"name": "main", "command": ["true"], "shell": True})
    assert r["result"]["isError"] is True
    assert "unknown field 'shell'" in r["result"]["content"][0]["text"]
    # An unknown tool is a protocol error.
    r = root.call("environment_teleport", {})
    assert r["error"]["code"] == -32602


def test_batch_rejected_before_dispatch(echo, root):
    before = len([r for r in audit(echo) if r["action"] == "environment.exec"])
    batch = [rpc("tools/call", {"name": "environment_run",
                                "arguments": {"name": "main", "command": ["true"]}}, id=900)]
    root.send(batch)
    m = root.recv()
    assert m["error"]["code"] == -32600 and m["id"] is None
    status, _, body = post(echo, batch)  # over HTTP too (unix-less: no token is 401 first)
    assert status == 401
    tok = mint(echo, "batcher", ["main"], ALL_VERBS, kind="human")["token"]
    status, _, body = post(echo, batch, token=tok)
    assert status == 400 and body["error"]["code"] == -32600
    assert len([r for r in audit(echo) if r["action"] == "environment.exec"]) == before


def test_foreign_origin_and_host_rejected(echo):
    tok = mint(echo, "origin", ["main"], ALL_VERBS, kind="human")["token"]
    status, hdrs, body = post(echo, INIT, token=tok, headers={"Origin": "http://localhost:3000"})
    assert status == 200 and hdrs.get("mcp-session-id")
    for origin in ("http://evil.example", "https://localhost.evil.example", "null",
                   "http://127.0.0.1.nip.io:80"):
        status, _, body = post(echo, INIT, token=tok, headers={"Origin": origin})
        assert status == 403, origin
        assert "Origin" in body["error"]["message"]
    status, _, body = post(echo, INIT, token=tok, host=f"evil.example:{echo.port}")
    assert status == 403 and "Host" in body["error"]["message"]
    # Refused before any session was made: nothing to use later.
    status, _, _ = post(echo, rpc("tools/list", id=2), token=tok)
    assert status == 400  # no session


def test_scoped_token_sees_no_other_environment(echo):
    tok = mint(echo, "scoped", ["pr-b"], "env:read,env:exec")["token"]
    c = Stdio(echo, token=tok, via_http=True)
    try:
        c.initialize()
        listed = c.call("environment_list")["result"]["structuredContent"]["environments"]
        assert [e["name"] for e in listed] == ["pr-b"]
        for tool, extra in (("environment_info", {}), ("budget_status", {}),
                            ("environment_logs", {}),
                            ("environment_run", {"command": ["true"]})):
            other = c.call(tool, {"name": "pr-a", **extra})
            absent = c.call(tool, {"name": "pr-zz", **extra})
            norm = lambda r: json.dumps(r["result"]).replace("pr-a", "X").replace("pr-zz", "X")
            assert norm(other) == norm(absent), tool
            assert other["result"]["isError"] is True
            assert "not found" in other["result"]["content"][0]["text"]
        # Production is out of an agent's scope too.
        prod = c.call("environment_info", {"name": "main"})
        assert prod["result"]["content"][0]["text"] == "environment 'main' not found"
        res = c.request("resources/list")["result"]["resources"]
        assert [r["uri"] for r in res] == ["branchbox://environments/pr-b"]
        a = c.request("resources/read", {"uri": "branchbox://environments/pr-a"})
        z = c.request("resources/read", {"uri": "branchbox://environments/pr-zz"})
        assert a["error"]["code"] == z["error"]["code"] == -32002
    finally:
        c.close()


def test_tools_list_differs_by_verbs(echo):
    reader = mint(echo, "reader", ["pr-*"], "env:read")["token"]
    runner = mint(echo, "runner", ["pr-*"], "env:read,env:exec")["token"]
    full = mint(echo, "full", ["pr-*"], ALL_VERBS)["token"]
    seen = {}
    for name, tok in (("reader", reader), ("runner", runner), ("full", full)):
        c = Stdio(echo, token=tok, via_http=True)
        try:
            c.initialize()
            seen[name] = tool_names(c.request("tools/list"))
        finally:
            c.close()
    assert "environment_run" not in seen["reader"]
    assert "environment_create" not in seen["reader"]
    assert "environment_destroy" not in seen["reader"]
    assert {"environment_list", "environment_info", "budget_status"} <= seen["reader"]
    assert seen["runner"] == seen["reader"] | {"environment_run"}
    assert {"environment_create", "environment_destroy", "environment_run"} <= seen["full"]
    # A tool the token lacks the verb for is refused (and recorded) like REST's 403.
    c = Stdio(echo, token=reader, via_http=True)
    try:
        c.initialize()
        r = c.call("environment_run", {"name": "pr-b", "command": ["true"]})
        assert r["result"]["isError"] is True
        assert "may not env:exec" in r["result"]["content"][0]["text"]
    finally:
        c.close()


def test_every_tool_call_is_audited_as_mcp(echo):
    tok = mint(echo, "audited", ["pr-*"], "env:read,env:exec")["token"]
    c = Stdio(echo, token=tok, via_http=True)
    try:
        c.initialize()
        calls = [("environment_list", {}), ("environment_info", {"name": "pr-b"}),
                 ("environment_info", {"name": "pr-nope"}), ("budget_status", {"name": "pr-b"}),
                 ("environment_run", {"name": "main", "command": ["true"]})]
        for tool, args in calls:
            c.call(tool, args)
    finally:
        c.close()
    mine = [r for r in audit(echo) if r["principal"] == "audited" and r["interface"] == "mcp"
            and r["action"] != "mcp"]
    assert [r["action"] for r in mine] == ["environment.list", "environment.get",
                                           "environment.get", "environment.budget",
                                           "environment.exec"]
    assert [r["decision"] for r in mine] == ["allow", "allow", "deny", "allow", "deny"]
    assert mine[2]["reason"] == "no such environment"
    assert mine[4]["reason"] == "out of scope" and mine[4]["resource"] == "environment:main"
    assert all(r["request_digest"] for r in mine)


def test_session_never_authenticates(echo):
    a = mint(echo, "sess-a", ["pr-*"], "env:read", kind="human")
    b = mint(echo, "sess-b", ["pr-*"], "env:read", kind="human")["token"]
    status, hdrs, body = post(echo, INIT, token=a["token"])
    sid = hdrs["mcp-session-id"]
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", sid)
    h = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    assert post(echo, rpc("tools/list", id=2), token=a["token"], headers=h)[0] == 200
    # Without the token the session is nothing; with another token it does not exist.
    assert post(echo, rpc("tools/list", id=3), headers=h)[0] == 401
    status, _, body = post(echo, rpc("tools/list", id=4), token=b, headers=h)
    assert status == 404
    assert post(echo, rpc("tools/list", id=5), token=a["token"],
                headers={"Mcp-Session-Id": "0" * 32})[0] == 404
    # A revoked token is refused on a live session.
    echo.cli("token", "revoke", a["id"])
    assert post(echo, rpc("tools/list", id=6), token=a["token"], headers=h)[0] == 401
    # DELETE ends a session (of the token that opened it).
    status, hdrs, _ = post(echo, INIT, token=b)
    h = {"Mcp-Session-Id": hdrs["mcp-session-id"]}
    assert post(echo, None, token=b, headers=h, method="DELETE")[0] == 200
    assert post(echo, rpc("tools/list", id=7), token=b, headers=h)[0] == 404


def test_modern_era(echo, root):
    r = root.request("server/discover", {"_meta": META})["result"]
    assert r["resultType"] == "complete" and MODERN in r["supportedVersions"]
    r = root.request("tools/list", {"_meta": META})["result"]
    assert r["resultType"] == "complete" and r["cacheScope"] == "private" and r["ttlMs"] == 0
    r = root.request("tools/call", {"name": "environment_list", "arguments": {}, "_meta": META})
    assert r["result"]["resultType"] == "complete"
    r = root.request("tools/list", {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}})
    assert r["error"]["code"] == -32602
    r = root.request("tools/list", {"_meta": dict(META, **{
        "io.modelcontextprotocol/protocolVersion": "2099-01-01"})})
    assert r["error"]["code"] == -32022 and MODERN in r["error"]["data"]["supported"]
    r = root.request("ping", {"_meta": META})
    assert r["error"]["code"] == -32601
    # Over HTTP: no session, headers mirror the body.
    tok = mint(echo, "modern", ["pr-*"], "env:read", kind="human")["token"]
    msg = rpc("tools/list", {"_meta": META})
    h = {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
    status, hdrs, body = post(echo, msg, token=tok, headers=h)
    assert status == 200 and body["result"]["resultType"] == "complete"
    assert "mcp-session-id" not in hdrs
    status, _, body = post(echo, msg, token=tok, headers={"MCP-Protocol-Version": MODERN})
    assert status == 400 and body["error"]["code"] == -32020
    status, _, body = post(echo, msg, token=tok, headers=dict(h, **{"Mcp-Method": "tools/call"}))
    assert status == 400 and body["error"]["code"] == -32020


def test_progress_notifications(root):
    r = root.call("environment_info", {"name": "main"}, meta={"progressToken": "p-1"})
    assert r["result"]["isError"] is False
    progress = [n for n in r["_notes"] if n.get("method") == "notifications/progress"]
    assert [n["params"]["progress"] for n in progress] == [0, 1]
    assert all(n["params"]["progressToken"] == "p-1" for n in progress)
    r = root.call("environment_info", {"name": "main"})
    assert r["_notes"] == []


def test_cancelled_request_gets_no_result(root):
    root.send(rpc("tools/call", {"name": "environment_run",
                                 "arguments": {"name": "main", "command": ["sleep", "2"]}},
                  id="slow"))
    time.sleep(0.3)
    root.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
               "params": {"requestId": "slow", "reason": "test"}})
    time.sleep(3)
    r = root.request("tools/list")
    assert "result" in r
    assert not any(m.get("id") == "slow" for m in r["_notes"])


def test_fixtures_never_from_the_daemon(echo, root):
    r = root.call("test_simple_text")
    assert r["error"]["code"] == -32602
    tok = mint(echo, "fixt", ["pr-*"], "env:read", kind="human")["token"]
    status, hdrs, _ = post(echo, INIT, token=tok)
    h = {"Mcp-Session-Id": hdrs["mcp-session-id"]}
    status, _, body = post(echo, rpc("tools/call", {"name": "test_simple_text"}, id=2),
                           token=tok, headers=h)
    assert body["error"]["code"] == -32602
    # A header or argument naming the fixtures turns nothing on.
    status, _, body = post(echo, rpc("tools/list", id=3), token=tok,
                           headers=dict(h, **{"X-Test-Fixtures": "1"}))
    assert not any(t["name"].startswith("test_") for t in body["result"]["tools"])


def test_stdout_is_only_mcp(echo):
    c = Stdio(echo, token="bbx_not_a_token", via_http=True)
    try:
        c.send("this is not json")
        m = c.recv()
        assert m["error"]["code"] == -32700
        r = c.initialize()
        assert r["error"]["code"] == -32603 and "BRANCHBOX_TOKEN" in r["error"]["message"]
    finally:
        c.close()
    for line in c.raw:
        assert json.loads(line)["jsonrpc"] == "2.0"


def test_allowed_host_is_configured_not_assumed(tmp_path):
    from mcphelp import Daemon, make_repo
    d = Daemon(str(tmp_path), make_repo(str(tmp_path / "repo")),
               extra_args=["--mcp-allow-host", "dev.example"]).start()
    try:
        tok = mint(d, "hosts", ["pr-*"], "env:read", kind="human")["token"]
        assert post(d, INIT, token=tok, host=f"dev.example:{d.port}")[0] == 200
        assert post(d, INIT, token=tok, headers={"Origin": "https://dev.example"})[0] == 200
        assert post(d, INIT, token=tok, host=f"other.example:{d.port}")[0] == 403
        assert post(d, INIT, token=tok, headers={"Origin": "https://other.example"})[0] == 403
    finally:
        d.stop()
        d.down()
    p = run("serve", "--repo", str(tmp_path / "repo"), "--mcp-allow-host", "a.example:80",
            check=False)
    assert p.returncode == 2 and "--mcp-allow-host a.example:80" in p.stderr


def test_bridge_survives_a_daemon_restart(tmp_path):
    """Sessions live in the daemon's memory: after a restart the stdio bridge replays the
    client's initialize for a new one, and the client never sees the difference."""
    from mcphelp import Daemon, make_repo
    d = Daemon(str(tmp_path), make_repo(str(tmp_path / "repo"))).start()
    c = None
    try:
        c = Stdio(d)
        c.initialize()
        assert "result" in c.request("tools/list")
        d.stop()
        d.start()
        r = c.request("tools/list")
        assert "environment_list" in tool_names(r)
        assert "result" in c.call("environment_list")
    finally:
        if c:
            c.close()
        d.stop()
        d.down()


class SseReader:
    """An open event stream of /mcp (the daemon's or a bridge's): messages on a queue."""

    def __init__(self, port, method, headers, body=None):
        import http.client
        import queue
        import threading
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.conn.request(method, "/mcp", body=json.dumps(body) if body else None,
                          headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.q = queue.Queue()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.resp.read()

    def _read(self):
        try:
            for line in self.resp:
                line = line.decode().rstrip("\r\n")
                if line.startswith("data: "):
                    self.q.put(json.loads(line[6:]))
        except Exception:  # noqa: BLE001 - the stream was closed under us
            pass
        self.q.put(None)

    def next_update(self, uri, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.q.get(timeout=max(0.1, deadline - time.monotonic()))
            assert m is not None, "the stream ended"
            if m.get("method") == "notifications/resources/updated" and \
                    m["params"]["uri"] == uri:
                return m
        raise AssertionError(f"no notifications/resources/updated for {uri}")

    def close(self):
        import socket
        try:  # wakes the reading thread at once (close alone waits for its read)
            self.resp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        self.conn.close()


MAIN_URI = "branchbox://environments/main"


def stop_start_main(echo):
    echo.cli("env", "stop", "main", timeout=300)
    echo.cli("env", "start", "main", timeout=300)


def legacy_session(echo, tok):
    status, h, body = post(echo, INIT, token=tok)
    assert status == 200, body
    return {"Mcp-Session-Id": h["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}


def test_capabilities_offer_resource_subscriptions(echo):
    tok = mint(echo, "caps", ["main"], "env:read", kind="human")["token"]
    status, _, body = post(echo, INIT, token=tok)
    assert body["result"]["capabilities"]["resources"] == {"subscribe": True}


def test_resource_subscription_over_http(echo):
    """resources/subscribe in a session; the environment stops and starts; the session's GET
    stream carries notifications/resources/updated. A token that may not see the environment
    gets exactly the answer of one that does not exist."""
    tok = mint(echo, "sub", ["main"], "env:read", kind="human")["token"]
    sh = legacy_session(echo, tok)
    status, _, r = post(echo, rpc("resources/subscribe", {"uri": MAIN_URI}, id=2), token=tok,
                        headers=sh)
    assert status == 200 and r["result"] == {}, r
    stream = SseReader(echo.port, "GET", dict(sh, **{"Authorization": "Bearer " + tok,
                                                   "Accept": "text/event-stream"}))
    assert stream.status == 200
    try:
        stop_start_main(echo)
        m = stream.next_update(MAIN_URI)
        assert m["params"] == {"uri": MAIN_URI}
    finally:
        stream.close()

    # Another token's subscription to the same URI: not found, like a URI that is not there.
    other = mint(echo, "sub-other", ["pr-b"], "env:read")["token"]
    osh = legacy_session(echo, other)
    _, _, out = post(echo, rpc("resources/subscribe", {"uri": MAIN_URI}, id=3), token=other,
                     headers=osh)
    _, _, absent = post(echo, rpc("resources/subscribe",
                                  {"uri": "branchbox://environments/pr-zz"}, id=3),
                        token=other, headers=osh)
    norm = lambda r: json.dumps(r).replace("main", "X").replace("pr-zz", "X")  # noqa: E731
    assert out["error"]["code"] == -32002 and norm(out) == norm(absent)


def test_subscription_bound_per_session(echo):
    tok = mint(echo, "bound", ["pr-*"], "env:read", kind="human")["token"]
    sh = legacy_session(echo, tok)
    answers = []
    for i in range(34):
        add_environment(echo, f"pr-bound-{i}")
        _, _, r = post(echo, rpc("resources/subscribe",
                                 {"uri": f"branchbox://environments/pr-bound-{i}"}, id=i + 2),
                       token=tok, headers=sh)
        answers.append(r)
    assert all("result" in r for r in answers[:32])
    assert "at most 32 subscriptions per session" in answers[32]["error"]["message"]
    # Unsubscribing makes room again.
    _, _, r = post(echo, rpc("resources/unsubscribe",
                             {"uri": "branchbox://environments/pr-bound-0"}, id=99),
                   token=tok, headers=sh)
    assert r["result"] == {}
    _, _, r = post(echo, rpc("resources/subscribe",
                             {"uri": "branchbox://environments/pr-bound-33"}, id=100),
                   token=tok, headers=sh)
    assert "result" in r


def test_resource_subscription_over_stdio(echo):
    """Through the stdio bridge, the updates come on stdout."""
    c = Stdio(echo)
    try:
        c.initialize()
        assert c.request("resources/subscribe", {"uri": MAIN_URI})["result"] == {}
        time.sleep(0.5)
        stop_start_main(echo)
        deadline = time.monotonic() + 120
        while True:
            m = c.recv(timeout=max(1, deadline - time.monotonic()))
            if m.get("method") == "notifications/resources/updated":
                assert m["params"]["uri"] == MAIN_URI
                break
    finally:
        c.close()


def test_subscriptions_listen_modern(echo):
    """2026-07-28: subscriptions/listen answers with an event stream, acknowledged first with
    the URIs agreed to (an invisible one left out like an absent one), then the updates, each
    carrying the subscription's id."""
    tok = mint(echo, "listen", ["main"], "env:read", kind="human")["token"]
    h = {"Authorization": "Bearer " + tok, "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN,
         "Mcp-Method": "subscriptions/listen"}
    body = rpc("subscriptions/listen", {"_meta": META, "notifications": {
        "resourceSubscriptions": [MAIN_URI, "branchbox://environments/pr-a",
                                  "branchbox://environments/pr-zz"]}}, id="L1")
    stream = SseReader(echo.port, "POST", h, body)
    assert stream.status == 200
    try:
        ack = stream.q.get(timeout=30)
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["notifications"] == {"resourceSubscriptions": [MAIN_URI]}
        assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "L1"
        stop_start_main(echo)
        m = stream.next_update(MAIN_URI)
        assert m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "L1"
    finally:
        stream.close()
    # The legacy methods are not part of the era.
    status, _, r = post(echo, rpc("resources/subscribe", {"_meta": META, "uri": MAIN_URI}),
                        token=tok, headers={"MCP-Protocol-Version": MODERN,
                                            "Mcp-Method": "resources/subscribe"})
    assert r["error"]["code"] == -32601


class CountingProxy:
    """A loopback TCP relay in front of the daemon that counts the connections made to it."""

    def __init__(self, port):
        import socket
        import threading
        self.target = port
        self.accepted = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(2)
            except OSError:
                pass

    def _serve(self):
        import socket
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            u = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("via", ["stdio", "http"])
def test_bridge_keeps_its_connection_to_the_daemon(echo, via):
    """Messages one after another go over one kept connection, not one connection each."""
    from mcphelp import bridge_env, free_port, wait_port
    import subprocess
    proxy = CountingProxy(echo.port)
    tok = mint(echo, f"keep-{via}", ["main"], "env:read", kind="human")["token"]

    class P:  # the daemon as the bridge sees it: through the proxy
        url = f"http://127.0.0.1:{proxy.port}"
        state = echo.state
    try:
        if via == "stdio":
            c = Stdio(P, token=tok, via_http=True)
            try:
                c.initialize()
                for _ in range(20):
                    assert "result" in c.call("environment_info", {"name": "main"})
            finally:
                c.close()
        else:
            port = free_port()
            br = subprocess.Popen([echo_bin(), "mcp", "--http", f"127.0.0.1:{port}"],
                                  env=bridge_env(P, tok, via_http=True),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_port(port)
                import http.client
                h = {"Content-Type": "application/json", "Accept": "application/json"}

                def send(msg, headers):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    conn.request("POST", "/mcp", body=json.dumps(msg), headers=headers)
                    r = conn.getresponse()
                    body = json.loads(r.read())
                    sid = r.getheader("Mcp-Session-Id")
                    conn.close()
                    return body, sid
                _, sid = send(INIT, h)
                h.update({"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
                for i in range(20):
                    body, _ = send(rpc("tools/call", {"name": "environment_info",
                                                      "arguments": {"name": "main"}}, id=i + 2),
                                   h)
                    assert "result" in body, body
            finally:
                br.terminate()
                br.wait(timeout=30)
        assert 1 <= proxy.accepted <= 2, proxy.accepted
    finally:
        proxy.close()


def echo_bin():
    from mcphelp import BIN
    return BIN


def test_subscription_survives_a_daemon_restart(tmp_path):
    """The stdio bridge registers its subscriptions again in the new session after a daemon
    restart, and the updates keep coming."""
    from mcphelp import Daemon
    from echo_project import make_echo_repo
    d = Daemon(str(tmp_path), make_echo_repo(str(tmp_path / "repo"))).start()
    c = None
    try:
        d.cli("deploy", timeout=300)
        c = Stdio(d)
        c.initialize()
        assert c.request("resources/subscribe", {"uri": MAIN_URI})["result"] == {}
        d.stop()
        d.start()
        time.sleep(3)  # the bridge notices the restart and registers again
        while not c.q.empty():  # whatever the shutdown itself announced
            c.q.get()
        d.cli("env", "stop", "main", timeout=300)
        deadline = time.monotonic() + 120
        while True:
            m = c.recv(timeout=max(1, deadline - time.monotonic()))
            if m.get("method") == "notifications/resources/updated":
                assert m["params"]["uri"] == MAIN_URI
                break
    finally:
        if c:
            c.close()
        d.stop()
        d.down()


def test_subscription_streams_bounded_per_token(echo):
    """One token cannot hold every stream the daemon keeps: at most 16 open at once."""
    tok = mint(echo, "streams", ["main"], "env:read", kind="human")["token"]
    h = {"Authorization": "Bearer " + tok, "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN,
         "Mcp-Method": "subscriptions/listen"}
    streams = []
    try:
        for i in range(16):
            body = rpc("subscriptions/listen", {"_meta": META, "notifications": {
                "resourceSubscriptions": [MAIN_URI]}}, id=f"S{i}")
            s = SseReader(echo.port, "POST", h, body)
            streams.append(s)
            assert s.status == 200
        body = rpc("subscriptions/listen", {"_meta": META, "notifications": {}}, id="S16")
        s = SseReader(echo.port, "POST", h, body)
        assert s.status == 500 and b"at most 16 per token" in s.body, s.body
        # Another token is not held back by it.
        other = mint(echo, "streams-2", ["main"], "env:read", kind="human")["token"]
        s = SseReader(echo.port, "POST", dict(h, Authorization="Bearer " + other), body)
        streams.append(s)
        assert s.status == 200
    finally:
        for s in streams:
            s.close()
