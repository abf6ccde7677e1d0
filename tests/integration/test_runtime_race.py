"""Environments raced from many threads: exec, info, logs, preview-proxy requests, stop, start,
create (also from another preview) and destroy on the same few names, for a minute, against the
ASan+UBSan daemon. Every answer must be a deliberate one (2xx, or 4xx/409 saying why: not found,
not ready, busy), the daemon must keep answering, report no sanitizer error, and stop cleanly
with nothing of the previews left.
"""
import collections
import http.client
import json
import os
import random
import signal
import socket
import threading
import time

from echo_project import git_branch, start_echo_daemon, stop_echo_daemon

SECONDS = float(os.environ.get("BRANCHBOX_RACE_SECONDS", "60"))
THREADS = 8
NAMES = [f"pr-race-{i}" for i in range(3)]
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def call(d, method, path, body=None, timeout=180):
    """(status, text) as the local administrator over the unix socket."""
    conn = UnixHTTPConnection(d.socket, timeout)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        try:
            conn.request(method, path, body=data, headers=headers)
        except BrokenPipeError:
            pass  # answered from the headers (e.g. 404) before the body was read: read it
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


# Weighted so that environments spend most of the time ready, with commands running in them
# when a destroy, stop or create-from arrives.
OPS = {"create": 4, "create-from": 2, "destroy": 1, "exec": 6, "exec-long": 2, "info": 3, "logs": 2,
       "proxy": 6, "stop": 0.5, "start": 1}


def one_op(d, op, name, rnd):
    base = f"/v1/environments/{name}"
    if op == "create":
        return call(d, "POST", "/v1/environments", {"name": name, "branch": name})
    if op == "create-from":
        parent = rnd.choice([n for n in NAMES if n != name])
        return call(d, "POST", "/v1/environments", {"name": name, "branch": name, "from": parent})
    if op == "destroy":
        return call(d, "DELETE", base)
    if op == "exec":
        return call(d, "POST", base + "/exec", {"command": ["sh", "-c", "echo hi"], "timeout": 30})
    if op == "exec-long":
        return call(d, "POST", base + "/exec",
                        {"command": ["sh", "-c", "exec >&- 2>&-; sleep 30"], "timeout": 60})
    if op == "info":
        return call(d, "GET", base)
    if op == "logs":
        return call(d, "GET", base + "/logs?process=web")
    if op == "proxy":
        return call(d, "GET", f"/preview/{name}/race", timeout=60)
    if op == "stop":
        return call(d, "POST", base + "/stop")
    return call(d, "POST", base + "/start")


def test_environments_raced_from_many_threads():
    d = start_echo_daemon()
    try:
        for n in NAMES:
            git_branch(d.repo, n)
        seen = collections.Counter()
        bad = []
        stop_at = time.monotonic() + SECONDS

        def worker(seed):
            rnd = random.Random(seed)
            while time.monotonic() < stop_at and len(bad) < 20:
                op, name = rnd.choices(list(OPS), weights=list(OPS.values()))[0], rnd.choice(NAMES)
                try:
                    status, text = one_op(d, op, name, rnd)
                except (OSError, http.client.HTTPException) as e:
                    bad.append(f"{op} {name}: no answer: {e!r}")
                    continue
                seen[(op, status)] += 1
                # 2xx, or a refusal that says why; never a 5xx (an internal error) but the
                # proxy's 502 for an application not there (not ready, or gone meanwhile).
                if status >= 500 and not (op == "proxy" and status == 502):
                    bad.append(f"{op}: {status} {text[:300]}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 600)
        print("answers:", dict(sorted(seen.items())))
        assert not any(t.is_alive() for t in threads), "a request never returned"
        assert sum(v for (op, s), v in seen.items() if op == "exec" and s == 200) > 0, \
            "control: no exec ever ran, so nothing raced"
        assert sum(v for (op, s), v in seen.items() if op == "destroy" and s in (200, 204)) > 0, \
            "control: no destroy ever succeeded"
        assert not bad, "unexpected answers:\n" + "\n".join(bad)

        status, _ = call(d, "GET", "/healthz", timeout=30)
        assert status == 200
        for n in NAMES:
            status, text = call(d, "DELETE", f"/v1/environments/{n}")
            assert status in (200, 204, 404), f"final destroy of {n}: {status} {text}"
        status, text = call(d, "GET", "/v1/environments")
        left = [e["name"] for e in json.loads(text)["environments"] if e["name"] in NAMES]
        assert not left, f"previews left after destroy: {left}"

        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(timeout=120)
        log = d.read_log()
        found = [m for m in SANITIZER_MARKS if m in log]
        assert not found, f"sanitizer reports in the daemon log ({found}):\n{log[-6000:]}"
        assert rc == 0, f"the daemon exited {rc}:\n{log[-3000:]}"
    finally:
        stop_echo_daemon(d)
