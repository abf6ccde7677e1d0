"""The official MCP conformance suite (pinned in package.json, installed with npm ci) against
`branchbox mcp --test-fixtures`, and MCP Inspector CLI smoke calls in both protocol eras. Each
expected failure is listed, with its reason, in expected/*.yml; the suite fails on any other
failure and on an expected one that starts passing."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

from mcphelp import (BIN, HERE, NODE, NODE_MODULES, Daemon, bridge_env, free_port, make_repo,
                     require_node_modules, wait_port)

CONFORMANCE_0116 = os.path.join(NODE_MODULES, "conformance-0116", "dist", "index.js")
CONFORMANCE_020 = os.path.join(NODE_MODULES, "conformance-020a12", "dist", "index.js")
SUPERGATEWAY = os.path.join(NODE_MODULES, "supergateway", "dist", "index.js")
INSPECTOR = os.path.join(NODE_MODULES, "@modelcontextprotocol", "inspector", "clients",
                         "launcher", "build", "index.js")
EXPECTED = os.path.join(HERE, "expected")


@pytest.fixture(scope="module")
def daemon():
    require_node_modules()
    tmp = tempfile.mkdtemp(prefix="bbx-mcp-")
    d = Daemon(tmp, make_repo(os.path.join(tmp, "repo"))).start()
    yield d
    d.stop()
    d.down()
    shutil.rmtree(tmp, ignore_errors=True)


class Proc:
    """A background process of this test, ended by its pid."""

    def __init__(self, args, env, log):
        self.log = open(log, "w")
        self.p = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.log.close()


def conformance(script, url, expected, *args, cwd):
    p = subprocess.run([NODE, script, "server", "--url", url, "--expected-failures", expected,
                        *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    out = p.stdout + p.stderr
    total = re.search(r"Total: (\d+) passed, (\d+) failed", out)
    summary = out[out.find("=== SUMMARY ==="):] if "=== SUMMARY ===" in out else out[-4000:]
    print(summary)
    assert total, out[-4000:]
    assert p.returncode == 0, f"conformance exited {p.returncode}:\n{summary}"
    return int(total.group(1)), int(total.group(2))


def test_conformance_0_1_16_through_supergateway(daemon, tmp_path):
    port = free_port()
    env = bridge_env(daemon)
    env["PATH"] = os.path.dirname(NODE) + ":" + env.get("PATH", "")
    gw = Proc([NODE, SUPERGATEWAY, "--stdio", f"{BIN} mcp --test-fixtures",
               "--outputTransport", "streamableHttp", "--stateful", "--port", str(port)],
              env, tmp_path / "supergateway.log")
    try:
        wait_port(port)
        passed, failed = conformance(CONFORMANCE_0116, f"http://127.0.0.1:{port}/mcp",
                                     os.path.join(EXPECTED, "conformance-0.1.16.yml"),
                                     cwd=tmp_path)
        assert passed >= 39
    finally:
        gw.stop()


@pytest.mark.parametrize("requirements,minimum", [("2025-11-25", 80), ("2026-07-28", 191)])
def test_conformance_0_2_0_over_http_bridge(daemon, tmp_path, requirements, minimum):
    port = free_port()
    br = Proc([BIN, "mcp", "--http", f"127.0.0.1:{port}", "--test-fixtures"], bridge_env(daemon),
              tmp_path / "bridge.log")
    try:
        wait_port(port)
        passed, failed = conformance(
            CONFORMANCE_020, f"http://127.0.0.1:{port}/mcp",
            os.path.join(EXPECTED, f"conformance-0.2.0-alpha.12-{requirements}.yml"),
            "--requirements", requirements, cwd=tmp_path)
        assert passed >= minimum
    finally:
        br.stop()


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_cli_smoke(daemon, tmp_path, era):
    """The Inspector's CLI, as a user would run it, over stdio; a tee shows which era it spoke."""
    trace = tmp_path / "stdin.log"
    server = ["sh", "-c", f"tee -a {trace} | exec {BIN} mcp"]
    env = dict(os.environ, HOME=str(tmp_path))

    def inspect(*args, rc=0):
        p = subprocess.run([NODE, INSPECTOR, "--cli", "-e", f"BRANCHBOX_STATE={daemon.state}",
                            "--protocol-era", era, *server, *args], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == rc, p.stdout + p.stderr
        return json.loads(p.stdout)

    tools = {t["name"] for t in inspect("--method", "tools/list")["tools"]}
    assert {"environment_list", "environment_info", "environment_run"} <= tools
    r = inspect("--method", "tools/call", "--tool-name", "environment_list")
    assert r["isError"] is False and "environments" in r["structuredContent"]
    r = inspect("--method", "tools/call", "--tool-name", "environment_info",
                "--tool-arg", "name=pr-none", rc=5)  # the Inspector's exit for isError
    assert r["isError"] is True and "not found" in r["content"][0]["text"]
    sent = [json.loads(l) for l in open(trace) if l.strip()]
    methods = {m.get("method") for m in sent}
    if era == "legacy":
        assert "initialize" in methods
    else:
        assert "initialize" not in methods
        calls = [m for m in sent if m.get("method") == "tools/call"]
        assert calls and all(m["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]
                             == "2026-07-28" for m in calls)
