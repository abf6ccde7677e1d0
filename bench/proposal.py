#!/usr/bin/python3
"""Benchmark the proposal loop's submit-to-validated; prints one Markdown section for bench/run.

Usage: bench/proposal.py BUILD_DIR [--runs N]

Rewrites its own marked section of bench/RESULTS.md, keeping the list of every earlier run.

Production of examples/todo is deployed with the demo data, then its database grows to ~100 MiB
and ~2 GiB. At each size, interleaved (A B A B), N runs of:
  A  `POST /v1/proposals` of a branch fixing the seeded bug, polled every 20 ms until validated:
     the wall time, and the daemon's own per-step figures from the evidence (clone = snapshot +
     new credentials + sanitize + hooks + app healthy; each validate step); then the proposal is
     rejected (its preview destroyed), outside the timing;
  B  the same steps by hand through the CLI and the preview proxy: `env create` for the branch,
     `env exec` of the unit tests, the two HTTP checks through the preview proxy, the SQL check
     with `env exec` (psycopg2 in the app's sandbox; the daemon runs psql in the service's);
     then `env destroy`, outside the timing.
"""
import http.client
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from env import Bench, sh  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "RESULTS.md")
BEGIN, END = "<!-- bench:proposal -->", "<!-- /bench:proposal -->"
HISTORY = "Every run of this benchmark, newest first (none is ever removed):"
TARGET = 3.0
FIX = ('ILIKE %s ORDER BY t.id", (pattern))', 'ILIKE %s ORDER BY t.id", (pattern,))')


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(b, method, path, body=None):
    c = Unix(os.path.join(b.state, "branchbox.sock"))
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def fix_branch(b):
    wt = os.path.join(b.tmp, "wt")
    sh("git", "-C", b.repo, "worktree", "add", "-q", "-b", "bench-fix", wt, "main")
    p = os.path.join(wt, "app.py")
    text = open(p).read().replace(*FIX)
    open(p, "w").write(text)
    sh("git", "-C", wt, "-c", "user.name=b", "-c", "user.email=b@x.invalid", "commit", "-qam", "fix")
    sh("git", "-C", b.repo, "worktree", "remove", "--force", wt)


def by_proposal(b):
    t = time.monotonic()
    status, body = call(b, "POST", "/v1/proposals", {"branch": "bench-fix"})
    assert status == 201, body
    pid = json.loads(body)["id"]
    while True:
        status, body = call(b, "GET", f"/v1/proposals/{pid}")
        p = json.loads(body)
        if p["status"] not in ("submitted", "cloning", "validating"):
            break
        time.sleep(0.02)
    wall = time.monotonic() - t
    assert p["status"] == "validated", p
    ev = p["evidence"]
    steps = {s["name"]: s["duration_ms"] / 1000 for s in ev["steps"]}
    call(b, "POST", f"/v1/proposals/{pid}/reject", {"reason": "bench"})
    return {"wall": wall, "clone": ev["timings"]["clone_ms"] / 1000,
            "validate": ev["timings"]["validate_ms"] / 1000, **steps}


def by_hand(b):
    q = ("import os,psycopg2;c=psycopg2.connect(os.environ['DATABASE_URL']);cur=c.cursor();"
         "cur.execute('SELECT count(*) FROM schema_migrations');print(cur.fetchall())")
    out = {}
    t0 = time.monotonic()
    b.bb("env", "create", "bench-hand", "--branch", "bench-fix")
    out["clone"] = time.monotonic() - t0
    t = time.monotonic()
    b.bb("env", "exec", "bench-hand", "--", "sh", "-c", "python3 -m unittest discover -s tests")
    out["unit"] = time.monotonic() - t
    for name, path in (("health", "/healthz"), ("search", "/api/todos?q=report")):
        t = time.monotonic()
        status, body = call(b, "GET", f"/preview/bench-hand{path}")
        assert status == 200, (path, status, body)
        out[name] = time.monotonic() - t
    t = time.monotonic()
    b.bb("env", "exec", "bench-hand", "--", "python3", "-c", q)
    out["schema"] = time.monotonic() - t
    out["validate"] = sum(out[k] for k in ("unit", "health", "search", "schema"))
    out["wall"] = time.monotonic() - t0
    b.bb("env", "destroy", "bench-hand")
    return out


def med(xs):
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
    b = Bench(sys.argv[1])
    results = []
    try:
        b.start()
        b.bb("env", "exec", "main", "--", "python3", "seed.py")
        fix_branch(b)
        grown = 0
        for target in (100, 2048):
            size = b.grow(target - grown)
            grown = size // (1 << 20)
            by_proposal(b)  # warm-up
            by_hand(b)
            a, h = [], []
            for _ in range(runs):
                a.append(by_proposal(b))
                h.append(by_hand(b))
            results.append((size, a, h))
    finally:
        b.stop()
    rev = subprocess.run(["git", "-C", os.path.dirname(HERE), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    total = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) * 1024
    lines = [BEGIN, "## Proposals: submit-to-validated, by step, next to the same steps by hand", "",
             f"Commit {rev}. Machine: {os.cpu_count()} CPUs, {round(total / (1 << 30))} GiB, kernel "
             f"{platform.uname().release}; btrfs loop pool created by the daemon; build `{sys.argv[1]}`. "
             "Method: `bench/proposal.sh BUILD` (bench/proposal.py): production of examples/todo "
             "deployed with the demo data, its PostgreSQL grown with a filler table; per size, after "
             f"one warm-up, {runs} interleaved runs of (A) `POST /v1/proposals` of a branch fixing "
             "the seeded bug, polled every 20 ms until `validated` (per-step figures from the "
             "proposal's own evidence), and (B) the same steps by hand: `env create` of the branch, "
             "`env exec` of the unit tests, the two HTTP checks through the preview proxy, the SQL "
             "check with `env exec` (B runs the query with psycopg2 in the app's sandbox, the daemon "
             "with psql in the service's). Seconds, median (min-max). Not timed in either: rejecting "
             "the proposal / destroying the preview.", "",
             "| production data | | submit-to-validated (wall) | clone to healthy preview | unit | "
             "health | search | schema (SQL) | all validate steps |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for size, a, h in results:
        for label, xs in (("proposal", a), ("by hand", h)):
            cols = [med([x[k] for x in xs]) for k in
                    ("wall", "clone", "unit", "health", "search", "schema", "validate")]
            lines.append(f"| {size / (1 << 20):.0f} MiB | {label} | " + " | ".join(cols) + " |")
    lines.append("")
    walls = []
    for size, a, h in results:
        wa = statistics.median([x["wall"] for x in a])
        wh = statistics.median([x["wall"] for x in h])
        walls.append(f"{wa:.2f} s at {size / (1 << 20):.0f} MiB")
        lines.append(f"- {size / (1 << 20):.0f} MiB: the proposal takes {wa / wh:.2f}x the steps by "
                     "hand (median wall times).")
    lines.append(f"- Target (BENCHMARKS.md): under {TARGET:.0f} s for examples/, flat in data size.")
    meets = all(statistics.median([x["wall"] for x in a]) < TARGET for _, a, _ in results)
    hist = (f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {rev}: "
            f"{', '.join(walls)}: **{'meets' if meets else 'MISSES'}** the {TARGET:.0f} s target")
    old = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    history = []
    if BEGIN in old and END in old:
        sec = old.split(BEGIN, 1)[1].split(END, 1)[0]
        if HISTORY in sec:
            history = [l for l in sec.split(HISTORY, 1)[1].splitlines() if l.startswith("- ")]
    lines += ["", HISTORY, "", hist, *history, END]
    section = "\n".join(lines) + "\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = old.rstrip("\n") + "\n\n" + section
    with open(RESULTS + ".tmp", "w") as f:
        f.write(text.rstrip("\n") + "\n")
    os.replace(RESULTS + ".tmp", RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
