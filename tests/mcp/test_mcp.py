"""The MCP server on a real daemon: tools from the operations table, authorization and audit like
REST, both protocol eras, and the refusals (batches, foreign Origin/Host, sessions that do not
authenticate). One echo-project daemon (production deployed, no services) for the module."""
import json
import os
import re
import subprocess
import threading
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
    r = root.call("environment_run", {"name": "main",
                                      "command": ["sh", "-c", "echo hi; echo oops >&2; exit 3"]})
    res = r["result"]
    assert res["isError"] is True
    sc = res["structuredContent"]
    assert sc["exit_code"] == 3
    # Each stream apart, and both together as REST and the CLI have always had them.
    assert sc["stdout"] == "hi\n" and sc["stderr"] == "oops\n"
    assert sc["stdout_truncated"] is False and sc["stderr_truncated"] is False
    assert sorted(sc["output"].splitlines()) == ["hi", "oops"]
    tools = {t["name"]: t for t in root.request("tools/list")["result"]["tools"]}
    props = tools["environment_run"]["outputSchema"]["properties"]
    assert {"stdout", "stderr", "stdout_truncated", "stderr_truncated", "exit_code"} <= set(props)
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


TASKS = "io.modelcontextprotocol/tasks"
TASKS_META = dict(META, **{"io.modelcontextprotocol/clientCapabilities":
                           {"extensions": {TASKS: {}}}})


def test_long_tool_runs_as_a_task_of_its_principal(echo, root):
    r = root.request("server/discover", {"_meta": META})["result"]
    assert TASKS in r["capabilities"]["extensions"]
    run = {"name": "main", "command": ["sh", "-c", "sleep 1; echo hi"]}
    # Without the extension declared: answered when done.
    r = root.request("tools/call", {"name": "environment_run", "arguments": run, "_meta": META})
    assert r["result"]["resultType"] == "complete"
    assert r["result"]["structuredContent"]["output"] == "hi\n"
    # Declared: a task at once, the operation in the background, its result on tasks/get.
    started = time.monotonic()
    r = root.request("tools/call", {"name": "environment_run", "arguments": run,
                                    "_meta": TASKS_META})["result"]
    assert time.monotonic() - started < 1
    assert r["resultType"] == "task" and r["status"] == "working" and r["ttlMs"] > 0
    task = r["taskId"]
    for _ in range(100):
        g = root.request("tasks/get", {"taskId": task, "_meta": TASKS_META})["result"]
        if g["status"] != "working":
            break
        time.sleep(0.1)
    assert g["status"] == "completed" and g["resultType"] == "complete"
    assert g["result"]["structuredContent"]["output"] == "hi\n"
    # A short tool never becomes a task.
    r = root.request("tools/call", {"name": "environment_list", "arguments": {},
                                    "_meta": TASKS_META})["result"]
    assert r["resultType"] == "complete" and "environments" in r["structuredContent"]
    # Another principal: the task does not exist for it, to read or to cancel.
    tok = mint(echo, "tasks-other", ["*"], "env:read,env:exec", kind="human")["token"]
    for method in ("tasks/get", "tasks/cancel"):
        msg = rpc(method, {"taskId": task, "_meta": TASKS_META})
        h = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method, "Mcp-Name": task}
        status, _, body = post(echo, msg, token=tok, headers=h)
        assert status == 400 and body["error"]["code"] == -32602, body
    # Without the extension, the task methods are refused; a forged requestState too.
    r = root.request("tasks/get", {"taskId": task, "_meta": META})
    assert r["error"]["code"] == -32021
    assert r["error"]["data"]["requiredCapabilities"]["extensions"] == {TASKS: {}}
    r = root.request("tools/call", {"name": "environment_list", "arguments": {},
                                    "requestState": "e30.AAAA", "_meta": META})
    assert r["error"]["code"] == -32602 and "requestState" in r["error"]["message"]
    # The owner's cancel of a finished task is an empty acknowledgement.
    r = root.request("tasks/cancel", {"taskId": task, "_meta": TASKS_META})["result"]
    assert r == {"resultType": "complete"}


def test_cancelled_task_stops_its_operation(echo, root):
    """tasks/cancel of a running environment_run kills its processes; the task ends at once."""
    marker = "task-cancel-%d" % os.getpid()
    run = {"name": "main", "command": ["sh", "-c", f"exec sleep 30 # {marker}"]}
    r = root.request("tools/call", {"name": "environment_run", "arguments": run,
                                    "_meta": TASKS_META})["result"]
    task = r["taskId"]

    def sleepers():
        out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
        return [p for p in out.split() if int(p) != os.getpid()]
    for _ in range(100):
        if sleepers():
            break
        time.sleep(0.05)
    assert sleepers(), "the command never started"
    started = time.monotonic()
    assert root.request("tasks/cancel", {"taskId": task, "_meta": TASKS_META})["result"] == \
        {"resultType": "complete"}
    for _ in range(100):
        g = root.request("tasks/get", {"taskId": task, "_meta": TASKS_META})["result"]
        if g["status"] not in ("working",):
            break
        time.sleep(0.1)
    assert time.monotonic() - started < 10, g
    assert g["status"] == "cancelled", g
    for _ in range(100):
        if not sleepers():
            break
        time.sleep(0.05)
    assert not sleepers()


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


# ---- cancellation stops the work ----

def pids_running(marker):
    """Host pids whose argv has marker as one argument (the sandboxed command, by its pid)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if marker.encode() in args and not zombie:
            found.append(int(pid))
    return found


def wait_reaped(pids):
    """A killed command is a zombie for a moment after its argv is gone: wait until its pid
    namespace's init (or the kernel, once init is gone) has reaped every one."""
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids), timeout=5,
             what=f"pids {pids} to be reaped")


def wait_for(pred, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cancel_msg(request_id, meta=None):
    params = {"requestId": request_id, "reason": "test"}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}


def session_of(echo, tok):
    status, hdrs, _ = post(echo, INIT, token=tok)
    assert status == 200
    return {"Mcp-Session-Id": hdrs["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}


class Call:
    """A tools/call POSTed to /mcp on a thread of its own: its answer, and how long it took."""

    def __init__(self, echo, tok, headers, tool, args, id):
        self.result = None
        self.t0 = time.monotonic()
        self.elapsed = None

        def go():
            self.result = post(echo, rpc("tools/call", {"name": tool, "arguments": args}, id=id),
                               token=tok, headers=headers)
            self.elapsed = time.monotonic() - self.t0
        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()

    def join(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the call did not end"
        return self.result


def test_cancel_over_http_kills_the_command_and_only_for_its_token(echo):
    a = mint(echo, "cancel-a", ["main"], ALL_VERBS, kind="human")["token"]
    b = mint(echo, "cancel-b", ["main"], ALL_VERBS, kind="human")["token"]
    ha, hb = session_of(echo, a), session_of(echo, b)
    marker = "31.4159"
    call = Call(echo, a, ha, "environment_run", {"name": "main", "command": ["sleep", marker]},
                id="run-1")
    pids = wait_for(lambda: pids_running(marker), what="the command to run")
    time.sleep(0.5)
    # Another token naming the same request id, with its own session and without one: nothing.
    assert post(echo, cancel_msg("run-1"), token=b, headers=hb)[0] == 202
    assert post(echo, cancel_msg("run-1", META), token=b,
                headers={"MCP-Protocol-Version": MODERN,
                         "Mcp-Method": "notifications/cancelled"})[0] == 202
    # The same token in the other era (not the session that sent the call): nothing either.
    assert post(echo, cancel_msg("run-1", META), token=a,
                headers={"MCP-Protocol-Version": MODERN,
                         "Mcp-Method": "notifications/cancelled"})[0] == 202
    time.sleep(1.5)
    assert call.thread.is_alive() and pids_running(marker) == pids
    # Its own token and session: the command dies at once and no answer comes.
    t = time.monotonic()
    assert post(echo, cancel_msg("run-1"), token=a, headers=ha)[0] == 202
    status, hdrs, body = call.join(10)
    assert time.monotonic() - t < 5 and call.elapsed < 15
    assert status == 200 and hdrs["content-type"].startswith("text/event-stream")
    assert body is None  # an event stream that ends without a response
    wait_for(lambda: not pids_running(marker), timeout=5, what="the command to be gone")
    wait_reaped(pids)
    mine = [r for r in audit(echo) if r["principal"] == "cancel-a"
            and r["action"] == "environment.exec"]
    assert [r["outcome"] for r in mine] == ["intent", "409"]
    assert "cancelled by its caller" in mine[1]["reason"]
    assert not [r for r in audit(echo) if r["principal"] == "cancel-b"
                and r["action"] == "environment.exec"]
    # The token and the environment work on: a next call answers.
    r = post(echo, rpc("tools/call", {"name": "environment_run",
                                      "arguments": {"name": "main", "command": ["true"]}},
                       id="run-2"), token=a, headers=ha)
    assert r[0] == 200 and r[2]["result"]["isError"] is False


def test_cancel_over_the_stdio_bridge_kills_the_command(echo, root):
    marker = "32.4159"
    root.send(rpc("tools/call", {"name": "environment_run",
                                 "arguments": {"name": "main", "command": ["sleep", marker]}},
                  id="slow-stdio"))
    pids = wait_for(lambda: pids_running(marker), what="the command to run")
    time.sleep(0.5)
    t = time.monotonic()
    root.send(cancel_msg("slow-stdio"))
    wait_for(lambda: not pids_running(marker), timeout=5, what="the command to be gone")
    assert time.monotonic() - t < 5
    wait_reaped(pids)
    r = root.request("tools/list")
    assert "result" in r
    assert not any(m.get("id") == "slow-stdio" for m in r["_notes"])
    rec = [r for r in audit(echo) if r["action"] == "environment.exec"
           and r["interface"] == "mcp" and r["outcome"] != "intent"][-1]
    assert rec["outcome"] == "409" and "cancelled by its caller" in rec["reason"]


class At:
    """Where post() sends: the `branchbox mcp --http` bridge's port instead of the daemon's."""

    def __init__(self, port):
        self.port = port


def test_cancel_through_the_http_bridge_kills_the_command(echo):
    import subprocess
    from mcphelp import BIN, bridge_env, free_port, wait_port
    tok = mint(echo, "cancel-bridge", ["main"], ALL_VERBS, kind="human")["token"]
    port = free_port()
    bridge = subprocess.Popen([BIN, "mcp", "--http", f"127.0.0.1:{port}"],
                              env=bridge_env(echo, tok, via_http=True),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        at = At(port)
        h = session_of(at, None)
        marker = "34.4159"
        call = Call(at, None, h, "environment_run",
                    {"name": "main", "command": ["sleep", marker]}, id=77)
        pids = wait_for(lambda: pids_running(marker), what="the command to run")
        time.sleep(0.5)
        t = time.monotonic()
        assert post(at, cancel_msg(77), headers=h)[0] == 202
        status, hdrs, body = call.join(10)
        assert time.monotonic() - t < 5
        assert status == 200 and body is None
        wait_for(lambda: not pids_running(marker), timeout=5, what="the command to be gone")
        wait_reaped(pids)
    finally:
        bridge.terminate()
        bridge.wait(timeout=30)


SLOW_CONFIG = """\
applications:
  web:
    source:
      root: "."
    type: "python:3.11"
    hooks:
      deploy: "sleep 33.4159"
    web:
      commands:
        start: "python3 echo.py"
      port: 8000
"""


def test_cancelled_create_leaves_no_preview(echo):
    import glob
    import subprocess
    from echo_project import GIT_ENV
    repo = echo.repo
    git = lambda *a: subprocess.run(["git", "-C", repo, *a], check=True, env=GIT_ENV,
                                    capture_output=True)
    git("checkout", "-q", "-b", "pr-slow", "main")
    try:
        with open(os.path.join(repo, ".branchbox", "config.yaml"), "w") as f:
            f.write(SLOW_CONFIG)
        git("commit", "-q", "-am", "a slow deploy hook")
    finally:
        git("checkout", "-q", "main")
    tok = mint(echo, "cancel-create", ["pr-slow"], ALL_VERBS)["token"]
    h = session_of(echo, tok)
    call = Call(echo, tok, h, "environment_create", {"name": "pr-slow"}, id="create-1")
    wait_for(lambda: pids_running("33.4159"), timeout=120, what="the deploy hook to run")
    time.sleep(0.5)
    t = time.monotonic()
    assert post(echo, cancel_msg("create-1"), token=tok, headers=h)[0] == 202
    status, _, body = call.join(30)
    assert time.monotonic() - t < 15  # the hook was cut short, not waited for (33 s)
    assert status == 200 and body is None
    assert not pids_running("33.4159")
    assert "pr-slow" not in echo.cli("env", "list").stdout
    assert not glob.glob(os.path.join(echo.state, "pool", "mnt", "*", "pr-slow"))
    assert not glob.glob(os.path.join(echo.state, "**", "volumes", "pr-slow"), recursive=True)
    rec = [r for r in audit(echo) if r["principal"] == "cancel-create"
           and r["action"] == "environment.create"]
    assert rec[-1]["outcome"] == "409" and "cancelled by its caller" in rec[-1]["reason"]
    # The name is free again: nothing half-made holds it.
    status, _, body = post(echo, rpc("tools/call", {"name": "environment_info",
                                                    "arguments": {"name": "pr-slow"}}, id=3),
                           token=tok, headers=h)
    assert "not found" in body["result"]["content"][0]["text"]


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


def listen_headers(tok):
    """The headers of a 2026-07-28 subscriptions/listen POST."""
    return {"Authorization": "Bearer " + tok, "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN,
            "Mcp-Method": "subscriptions/listen"}


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


def test_revoked_token_stream_ends_without_a_word(echo):
    """A stream outlives no token: once its token is revoked, the next change (or keepalive)
    ends the stream and carries nothing about the environment. Both ways of holding one
    open: the legacy session's GET stream and 2026-07-28 subscriptions/listen."""
    import queue
    for way in ("legacy", "listen"):
        t = mint(echo, f"rev-{way}", ["main"], "env:read", kind="human")
        tok = t["token"]
        if way == "legacy":
            sh = legacy_session(echo, tok)
            _, _, r = post(echo, rpc("resources/subscribe", {"uri": MAIN_URI}, id=2), token=tok,
                           headers=sh)
            assert r["result"] == {}, r
            stream = SseReader(echo.port, "GET", dict(sh, **{"Authorization": "Bearer " + tok,
                                                           "Accept": "text/event-stream"}))
        else:
            body = rpc("subscriptions/listen", {"_meta": META, "notifications": {
                "resourceSubscriptions": [MAIN_URI]}}, id=7)
            stream = SseReader(echo.port, "POST", listen_headers(tok), body)
        assert stream.status == 200
        try:
            if way == "listen":  # the acknowledgement comes first
                assert stream.q.get(timeout=30) is not None
            echo.cli("token", "revoke", t["id"])
            stop_start_main(echo)
            seen = []
            while True:
                try:
                    m = stream.q.get(timeout=60)
                except queue.Empty:
                    raise AssertionError(f"the stream outlived its token; it carried {seen}")
                if m is None:
                    break
                seen.append(m)
            assert not [m for m in seen if "environments/main" in json.dumps(m)], seen
        finally:
            stream.close()


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
    h = listen_headers(tok)
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
    h = listen_headers(tok)
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
        # A bound, not a fault: 429 with a JSON-RPC error saying which bound.
        assert s.status == 429 and b"at most 16 per token" in s.body, s.body
        assert json.loads(s.body)["error"]["code"] == -32029
        # A legacy session's GET stream counts against the same bound, and is refused alike.
        sh = legacy_session(echo, tok)
        s = SseReader(echo.port, "GET", dict(sh, **{"Authorization": "Bearer " + tok,
                                                  "Accept": "text/event-stream"}))
        assert s.status == 429 and b"at most 16 per token" in s.body, s.body
        assert json.loads(s.body)["error"]["code"] == -32029
        # Another token is not held back by it.
        other = mint(echo, "streams-2", ["main"], "env:read", kind="human")["token"]
        s = SseReader(echo.port, "POST", dict(h, Authorization="Bearer " + other), body)
        streams.append(s)
        assert s.status == 200
    finally:
        for s in streams:
            s.close()
