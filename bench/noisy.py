#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Production's latency through the preview proxy while a neighbouring preview misbehaves.

Usage: bench/noisy.py BUILD_DIR   (root; rewrites the noisy section of bench/RESULTS.md)

A daemon on a temporary state dir (btrfs loop pool made by the daemon) deploys examples/todo as
production and creates one preview next to it, the neighbour. Production is then sent the
same traffic in two phases, interleaved in rounds with the order rotated (I N, N I, I N, N I):

  I  the neighbour idle: its PostgreSQL, Redis and application running, no traffic;
  N  the neighbour running bench/noisy-hogs.c through one `branchbox env exec` (what an
     agent with env:exec on its preview can do; its execs run one at a time): a CPU burner
     per CPU, a memory hog, a fork bomb and a disk filler writing into its /app/uploads
     volume mount (see that file).

Traffic: REQUESTS per block over CONNECTIONS keep-alive connections to
/preview/main/... on the daemon's loopback HTTP port with a human token: 9 in 10 are
GET /api/stats (two PostgreSQL queries and a Redis GET), 1 in 10 is POST /api/todos (a
PostgreSQL INSERT committed to disk). Every request is timed, failures included.
The hogs start before a block and are ready (plus a 1 s ramp) before its first request; they
stop after its last one. Nothing here asserts on a time.

Env: NOISY_ROUNDS (4), NOISY_REQUESTS (500 per block), NOISY_CONNECTIONS (4).
BENCH_QUICK=1 runs 2 rounds of 100 requests to check the script itself: its section goes to
stderr and bench/RESULTS.md is left alone.
"""
import datetime
import glob
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "RESULTS.md")
BEGIN, END = "<!-- bench:noisy -->", "<!-- /bench:noisy -->"
HISTORY = "Every run of this benchmark, newest first (none is ever removed):"
TARGET = 1.5
NEIGHBOUR = "noisy"
QUICK = bool(os.environ.get("BENCH_QUICK"))
ROUNDS = int(os.environ.get("NOISY_ROUNDS", "2" if QUICK else "4"))
REQUESTS = int(os.environ.get("NOISY_REQUESTS", "100" if QUICK else "500"))
CONNECTIONS = int(os.environ.get("NOISY_CONNECTIONS", "4"))
BLOCK_CAP_S = 60        # a block that takes longer stops there and says so
REQUEST_TIMEOUT_S = 15
HOG_DEADLINE_S = 150    # the hogs end by themselves after this, whatever happens here
HOGS_SOURCE = os.path.join(HERE, "noisy-hogs.c")


def log(msg):
    print(f"noisy bench: {msg}", file=sys.stderr, flush=True)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def percentile(sorted_xs, p):
    """Nearest rank."""
    if not sorted_xs:
        return float("nan")
    return sorted_xs[max(0, math.ceil(p / 100 * len(sorted_xs)) - 1)]


def host_cpu():
    """(busy, total) jiffies of the whole machine."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return sum(f[:8]) - idle, sum(f[:8])


class Cgroups:
    """Where the daemon puts an environment's processes, found from one of its pids."""

    def __init__(self, pid):
        self.v1, self.v2 = {}, None
        for line in open(f"/proc/{pid}/cgroup"):
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls:
                for c in ctrls.split(","):
                    self.v1[c] = path
            else:
                self.v2 = path

    def leaf_dir(self, controller):
        """The process's own directory."""
        if self.v1.get(controller, "/") != "/":
            return f"/sys/fs/cgroup/{controller}{self.v1[controller]}"
        if self.v2 and self.v2 != "/":
            base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified/branchbox") else "/sys/fs/cgroup"
            return base + self.v2
        return None

    def env_dir(self, controller):
        """The environment's directory (the parent of the process's leaf)."""
        leaf = self.leaf_dir(controller)
        return os.path.dirname(leaf) if leaf else None


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def throttling(cpu_dir):
    """(periods, throttled periods) of a cgroup with a CPU quota, v1 or v2."""
    st = dict(l.split() for l in (read(os.path.join(cpu_dir or "", "cpu.stat"), "") or "").splitlines()
              if len(l.split()) == 2)
    return int(st.get("nr_periods", 0)), int(st.get("nr_throttled", 0))


def process_ticks(env_dir):
    """utime + stime of every process in the environment's cgroups, by pid."""
    out = {}
    for procs in glob.glob(os.path.join(env_dir, "*", "cgroup.procs")):
        for pid in (read(procs, "") or "").split():
            st = read(f"/proc/{pid}/stat")
            if st:
                f = st.rsplit(")", 1)[1].split()
                out[pid] = int(f[11]) + int(f[12])
    return out


def cpu_seconds(before, after):
    """CPU used between two process_ticks() samples; a process that started in between counts
    whole, one that ended in between is lost (the long-lived hogs and services are not)."""
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, build):
        self.bin = os.path.join(os.path.abspath(build), "src", "cli", "branchbox")
        self.tmp = tempfile.mkdtemp(prefix="bbx-bench-noisy-", dir="/var/tmp")
        self.state = os.path.join(self.tmp, "state")
        self.repo = os.path.join(self.tmp, "repo")
        self.env = dict(os.environ, BRANCHBOX_STATE=self.state)
        self.env.pop("BRANCHBOX_URL", None)
        self.env.pop("BRANCHBOX_TOKEN", None)
        self.daemon = None
        self.exec_proc = None
        self.port = None

    def bb(self, *args, timeout=600):
        p = subprocess.run([self.bin, *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"branchbox {' '.join(args[:3])} exited {p.returncode}: "
                               f"{p.stderr.strip()}")
        return p.stdout

    @property
    def uploads(self):
        """The neighbour's /app/uploads as the host sees it."""
        return os.path.join(self.state, "pool", "mnt", "volumes", NEIGHBOUR, "mounts", "web",
                            "uploads")

    def start(self):
        # The neighbour's program: static, so it needs nothing from the sandbox.
        self.hogs = os.path.join(self.tmp, "noisy-hogs")
        subprocess.run(["gcc", "-O2", "-static", "-Wall", "-o", self.hogs, HOGS_SOURCE], check=True)
        subprocess.run([os.path.join(ROOT, "examples", "todo", "make-repo.sh"), self.repo],
                       check=True, capture_output=True)
        subprocess.run(["git", "-C", self.repo, "branch", "-f", NEIGHBOUR, "main"], check=True)
        log_path = os.path.join(self.tmp, "daemon.log")
        for _ in range(5):
            # A uid range of its own, so daemons of other runs on this host never collide.
            first = 0x71000000 + random.randrange((0x7F000000 - 0x71000000) // 4096) * 4096
            self.log = open(log_path, "w")
            self.daemon = subprocess.Popen(
                [self.bin, "serve", "--repo", self.repo, "--state", self.state,
                 "--listen", "127.0.0.1:0", "--uid-range", f"{first}-{first + 4095}"],
                stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.daemon.poll() is None:
                m = re.search(r"http port (\d+)", open(log_path).read())
                if m and os.path.exists(os.path.join(self.state, "branchbox.sock")):
                    self.port = int(m.group(1))
                    break
                time.sleep(0.05)
            if self.port:
                break
            self.log.close()
            if self.daemon.poll() is None:
                raise RuntimeError("the daemon did not become ready:\n" + open(log_path).read())
            if "--uid-range" not in open(log_path).read():
                raise RuntimeError("the daemon exited:\n" + open(log_path).read())
            self.daemon = None
        if not self.port:
            raise RuntimeError("no free uid range for the daemon")
        t = time.monotonic()
        self.bb("deploy")
        self.deploy_s = time.monotonic() - t
        self.bb("env", "exec", "main", "--", "python3", "migrate.py", "--seed")
        t = time.monotonic()
        self.bb("env", "create", NEIGHBOUR)
        self.create_s = time.monotonic() - t
        self.token = self.bb("token", "create", "--human", "bench", "--env", "main", "--verbs",
                             "env:read", "--ttl", "1h").strip().splitlines()[-1]
        info = json.loads(self.bb("env", "info", "main", "--json"))
        self.prod_cpu = Cgroups(next(p["pid"] for p in info["processes"]
                                     if p["kind"] == "application")).leaf_dir("cpu")
        info = json.loads(self.bb("env", "info", NEIGHBOUR, "--json"))
        self.neigh_cg = Cgroups(next(p["pid"] for p in info["processes"] if p["kind"] == "application"))
        # Written where an agent can write: the neighbour's own volume mount.
        shutil.copy(self.hogs, os.path.join(self.uploads, ".bench-hogs"))
        os.chmod(os.path.join(self.uploads, ".bench-hogs"), 0o755)
        self.neigh_procs = self.neigh_cg.env_dir("pids") or self.neigh_cg.env_dir("memory")

    def traffic(self, n):
        """n requests over CONNECTIONS connections; returns ([(seconds, status, kind)], wall)."""
        results, lock, nxt = [], threading.Lock(), [0]
        deadline = time.monotonic() + BLOCK_CAP_S
        headers = {"Authorization": f"Bearer {self.token}", "Host": "127.0.0.1"}

        def worker():
            conn = None
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= n or time.monotonic() > deadline:
                    break
                post = i % 10 == 9
                t = time.perf_counter()
                status = 0
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                          timeout=REQUEST_TIMEOUT_S)
                    if post:
                        conn.request("POST", "/preview/main/api/todos",
                                     body=json.dumps({"title": f"bench {i}"}),
                                     headers=dict(headers, **{"Content-Type": "application/json"}))
                    else:
                        conn.request("GET", "/preview/main/api/stats", headers=headers)
                    r = conn.getresponse()
                    r.read()
                    status = r.status
                    if r.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException):
                    if conn:
                        conn.close()
                    conn = None
                dt = time.perf_counter() - t
                with lock:
                    results.append((dt, status, "post" if post else "get"))
            if conn:
                conn.close()

        threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
        t = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return results, time.monotonic() - t

    def measured_block(self, phase):
        c0, h0, t0 = process_ticks(self.neigh_procs), host_cpu(), throttling(self.prod_cpu)
        res, wall = self.traffic(REQUESTS)
        c1, h1, t1 = process_ticks(self.neigh_procs), host_cpu(), throttling(self.prod_cpu)
        return {"phase": phase, "results": res, "wall": wall,
                "prod_periods": (t1[0] - t0[0], t1[1] - t0[1]),
                "neighbour_cores": cpu_seconds(c0, c1) / wall,
                "host_busy": (h1[0] - h0[0]) / max(1, h1[1] - h0[1])}

    def exec_cgroup(self):
        """Counters of the hogs' exec cgroup (v1 or v2), read while it exists."""
        out = {}
        for ctrl, files in (("memory", ("memory.limit_in_bytes", "memory.max_usage_in_bytes",
                                        "memory.failcnt", "memory.max", "memory.peak")),
                            ("pids", ("pids.max", "pids.peak", "pids.events")),
                            ("cpu", ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max", "cpu.stat"))):
            env_dir = self.neigh_cg.env_dir(ctrl)
            if not env_dir:
                continue
            leaves = glob.glob(os.path.join(env_dir, "exec-*"))
            for f in files:
                v = read(os.path.join(leaves[0], f)) if leaves else None
                if v is not None:
                    out[f] = v
                e = read(os.path.join(env_dir, f))
                if e is not None:
                    out["env:" + f] = e
        leaves = glob.glob(os.path.join(self.neigh_cg.env_dir("memory") or "/nonexistent", "exec-*"))
        oom = read(os.path.join(leaves[0], "memory.oom_control"), "") if leaves else ""
        m = re.search(r"oom_kill (\d+)", oom or "")
        if m:
            out["oom_kill"] = m.group(1)
        return out

    def noisy_block(self):
        for f in (".bench-stop", ".bench-ready"):
            if os.path.exists(os.path.join(self.uploads, f)):
                os.unlink(os.path.join(self.uploads, f))
        self.exec_out = open(os.path.join(self.tmp, "exec.out"), "w+")
        self.exec_proc = subprocess.Popen(
            [self.bin, "env", "exec", NEIGHBOUR, "--timeout", str(HOG_DEADLINE_S + 30), "--",
             "/app/uploads/.bench-hogs", str(HOG_DEADLINE_S), "/app/uploads"],
            env=self.env, stdout=self.exec_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(self.uploads, ".bench-ready")):
            if self.exec_proc.poll() is not None or time.monotonic() > deadline:
                self.stop_hogs()
                raise RuntimeError("the neighbour's hogs did not start: " + self.exec_output())
            time.sleep(0.05)
        time.sleep(1)
        block = self.measured_block("noisy")
        block["cgroup"] = self.exec_cgroup()
        block["hogs"] = self.stop_hogs()
        # Leave no writeback from the filler to the next block.
        t = time.monotonic()
        subprocess.run(["sync", "-f", os.path.join(self.state, "pool", "mnt")], check=False)
        block["sync_s"] = time.monotonic() - t
        time.sleep(1)
        return block

    def exec_output(self):
        self.exec_out.seek(0)
        return self.exec_out.read().strip()

    def stop_hogs(self):
        """Stop the hogs and wait for their exec; returns the supervisor's report."""
        if not self.exec_proc:
            return None
        if os.path.isdir(self.uploads):
            open(os.path.join(self.uploads, ".bench-stop"), "w").close()
        try:
            self.exec_proc.wait(timeout=HOG_DEADLINE_S + 60)
        except subprocess.TimeoutExpired:
            self.exec_proc.kill()
            self.exec_proc.wait()
        self.exec_proc = None
        out = self.exec_output()
        try:
            return json.loads(out.splitlines()[-1])
        except (ValueError, IndexError):
            return {"output": out[-500:]}

    def leftover_hogs(self):
        """Pids still in the neighbour's exec cgroups (there should be none)."""
        pids = set()
        for ctrl in ("pids", "memory", "cpu"):
            env_dir = self.neigh_cg.env_dir(ctrl) if hasattr(self, "neigh_cg") else None
            for leaf in glob.glob(os.path.join(env_dir or "/nonexistent", "exec-*")):
                pids |= {int(p) for p in (read(os.path.join(leaf, "cgroup.procs"), "") or "").split()}
        return pids

    def stop(self):
        left = set()
        try:
            self.stop_hogs()
            left = self.leftover_hogs()
            for pid in left:  # started by this run's exec: ours to kill, one by one
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            if self.daemon and self.daemon.poll() is None:
                try:
                    self.bb("env", "destroy", NEIGHBOUR, timeout=120)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    log(f"destroy {NEIGHBOUR}: {e}")
        finally:
            if self.daemon and self.daemon.poll() is None:
                self.daemon.terminate()
                try:
                    self.daemon.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    self.daemon.kill()
                    self.daemon.wait()
            mounts = [l.split()[4] for l in open("/proc/self/mountinfo")
                      if l.split()[4].startswith(self.tmp)]
            for m in sorted(mounts, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
            shutil.rmtree(self.tmp, ignore_errors=True)
        return left

    def run(self):
        self.start()
        log(f"production deployed in {self.deploy_s:.1f} s, neighbour created in {self.create_s:.1f} s")
        self.traffic(200)  # warm-up: connections, caches, the app's pools
        self.rounds = []
        for r in range(ROUNDS):
            order = ("idle", "noisy") if r % 2 == 0 else ("noisy", "idle")
            got = {}
            for phase in order:
                got[phase] = self.noisy_block() if phase == "noisy" else self.measured_block("idle")
                b = got[phase]
                lat = sorted(x[0] for x in b["results"])
                log(f"round {r + 1} {phase}: {len(lat)} requests in {b['wall']:.1f} s, "
                    f"p99 {percentile(lat, 99) * 1000:.1f} ms, neighbour {b['neighbour_cores']:.2f} cores, "
                    f"host busy {b['host_busy'] * 100:.0f}%")
            self.rounds.append((order, got))


def ms(x):
    return f"{x * 1000:.1f}"


def summary(blocks):
    res = [x for b in blocks for x in b["results"]]
    lat = sorted(x[0] for x in res)
    post = sorted(x[0] for x in res if x[2] == "post")
    bad = sum(1 for x in res if x[1] not in (200, 201))
    return {"n": len(lat), "bad": bad, "p50": percentile(lat, 50), "p99": percentile(lat, 99),
            "max": lat[-1] if lat else float("nan"), "post_p99": percentile(post, 99),
            "n_post": len(post),
            "cores": sum(b["neighbour_cores"] * b["wall"] for b in blocks) / sum(b["wall"] for b in blocks),
            "busy": sum(b["host_busy"] * b["wall"] for b in blocks) / sum(b["wall"] for b in blocks),
            "wall": sum(b["wall"] for b in blocks),
            "prod_periods": sum(b["prod_periods"][0] for b in blocks),
            "prod_throttled": sum(b["prod_periods"][1] for b in blocks)}


def hog_line(block):
    h = block.get("hogs") or {}
    reps = {}
    for r in h.get("reports", []):
        reps.setdefault(r["kind"], []).append(r)
    parts = []
    if "cpu" in reps:
        parts.append(f"{len(reps['cpu'])} CPU burners")
    if "memory" in reps:
        parts.append(f"memory hog held at most {max(r['peak_mib'] for r in reps['memory'])} MiB")
    if "bomb" in reps:
        # Only the bomb's last run reports; the children of a run that was killed stay.
        b = reps["bomb"][-1]
        fails = ", ".join(f"{k} x{v}" for k, v in sorted(b["fork_failures"].items())) or "none"
        parts.append(f"fork bomb's last run forked {b['forked']}, fork first failed after "
                     f"{b['fork_failed_at']} ({fails})")
    if "disk" in reps:
        d = reps["disk"][0]
        errs = ", ".join(f"{k} x{v}" for k, v in sorted(d["errors"].items()))
        parts.append(f"disk filler wrote {d['written_mib']} MiB" + (f" ({errs})" if errs else ""))
    if h.get("killed"):
        parts.append("hogs killed by a signal: " +
                     ", ".join(f"{k} x{v}" for k, v in sorted(h["killed"].items())))
    if h.get("restarts"):
        parts.append("hogs started again: " +
                     ", ".join(f"{k} x{v}" for k, v in sorted(h["restarts"].items())))
    if h.get("spawn_failures"):
        parts.append(f"{h['spawn_failures']} hog starts refused (fork failed)")
    if "output" in h:
        parts.append("supervisor output: " + h["output"].replace("\n", " ")[:200])
    cg = block.get("cgroup", {})
    if "memory.max_usage_in_bytes" in cg or "memory.peak" in cg:
        peak = int(cg.get("memory.max_usage_in_bytes", cg.get("memory.peak", 0)))
        parts.append(f"exec cgroup memory peak {peak >> 20} MiB")
    if "oom_kill" in cg:
        parts.append(f"OOM kills in it {cg['oom_kill']}")
    if "pids.peak" in cg:
        parts.append(f"its pids peak {cg['pids.peak']}")
    st = dict(l.split() for l in cg.get("cpu.stat", "").splitlines() if len(l.split()) == 2)
    if int(st.get("nr_periods", 0)):
        parts.append(f"throttled in {int(st['nr_throttled']) * 100 // int(st['nr_periods'])}% of its CPU periods")
    if "bomb_ramp_s" in h:
        parts.append(f"bomb alone for {h['bomb_ramp_s']} s before the others started")
    return "; ".join(parts)


def limit_text(cg):
    def lim(v):
        if v is None:
            return "?"
        if v in ("max", "-1") or int(v) >= 1 << 62:
            return "none"
        return v
    mem = cg.get("memory.limit_in_bytes", cg.get("memory.max"))
    env_mem = cg.get("env:memory.limit_in_bytes", cg.get("env:memory.max"))
    quota = cg.get("cpu.cfs_quota_us")
    period = cg.get("cpu.cfs_period_us", "100000")
    cpu = (f"{int(quota) / int(period):.2f} CPU" if quota and quota != "-1" else "none") if quota else \
        (cg.get("cpu.max", "?"))
    env_quota = cg.get("env:cpu.cfs_quota_us")
    env_cpu = (f"{int(env_quota) / int(cg.get('env:cpu.cfs_period_us', '100000')):.2f} CPU"
               if env_quota and env_quota != "-1" else "none") if env_quota else cg.get("env:cpu.max", "?")
    m = lambda v: lim(v) if lim(v) in ("none", "?") else f"{int(v) >> 20} MiB"
    return (f"the hogs' exec cgroup: memory {m(mem)}, pids {lim(cg.get('pids.max'))}, cpu {cpu}; "
            f"the neighbour's environment cgroup above it: memory {m(env_mem)}, "
            f"pids {lim(cg.get('env:pids.max'))}, cpu {env_cpu}")


def report(b, started, left):
    idle = [g["idle"] for _, g in b.rounds]
    noisy = [g["noisy"] for _, g in b.rounds]
    si, sn = summary(idle), summary(noisy)
    ratio = sn["p99"] / si["p99"]
    per_round = []
    for i, (order, g) in enumerate(b.rounds):
        a, n = summary([g["idle"]]), summary([g["noisy"]])
        per_round.append((i + 1, order, a, n, n["p99"] / a["p99"]))
    rr = sorted(x[4] for x in per_round)
    med = median(rr)
    verdict = "meets" if ratio <= TARGET else "MISSES"
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"], capture_output=True,
                           text=True).stdout.strip()
    commit += " (src/ modified)" if dirty else ""
    mem_total = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) >> 10
    when = started.strftime("%Y-%m-%d %H:%M UTC")
    shortfall = [f"round {i} {ph}: {s['n']} of {REQUESTS}" for i, o, a, n, _ in per_round
                 for ph, s in (("idle", a), ("noisy", n)) if s["n"] < REQUESTS]
    bad = si["bad"] + sn["bad"]
    hist = (f"- {when}, commit {commit}: p99 idle {ms(si['p99'])} ms, noisy {ms(sn['p99'])} ms, "
            f"**{ratio:.2f}x** ({verdict} {TARGET}x); per-round ratio {med:.2f}x ({rr[0]:.2f}-{rr[-1]:.2f}); "
            f"host CPU busy {si['busy'] * 100:.0f}% / {sn['busy'] * 100:.0f}%; "
            f"failed requests {si['bad']} / {sn['bad']}")
    lines = [
        BEGIN,
        "## Noisy neighbour: production p99 through the preview proxy",
        "",
        f"Run {when} by `bench/noisy.py BUILD` (bench/noisy.sh), commit {commit}, release build. "
        f"Machine: {os.cpu_count()} CPUs, {round(mem_total / 1024)} GiB, Linux {platform.release()}, "
        "shared with other work (its busy share is in the table: the load generator, the daemon, "
        "production and the neighbour all run on these same CPUs, so figures move between runs). "
        f"Btrfs loop pool made by the daemon; production deployed in {b.deploy_s:.1f} s, "
        f"the neighbour created in {b.create_s:.1f} s.",
        "",
        "What: examples/todo deployed as production (its PostgreSQL seeded), one preview of it next "
        f"to it. {ROUNDS} rounds, each a block with the neighbour idle and a block with it noisy, "
        "the order rotated (I N, N I, ...), after 200 warm-up requests. A block is "
        f"{REQUESTS} requests over {CONNECTIONS} keep-alive connections from a Python client to "
        "`http://127.0.0.1:PORT/preview/main/...` with a human token (authenticated, authorized "
        "and audited by the daemon, then proxied into production's network namespace): 9 in 10 "
        "`GET /api/stats` (two PostgreSQL queries, a Redis GET), 1 in 10 `POST /api/todos` "
        "(a PostgreSQL INSERT, committed). Latency is the client's, per request, failures "
        "included; percentiles by nearest rank over all requests of a phase.",
        "",
        "Noisy: bench/noisy-hogs.c, built static on the host and written into the neighbour's "
        "`/app/uploads` volume mount, run by one `branchbox env exec noisy -- "
        "/app/uploads/.bench-hogs` (what an agent with env:exec on its preview can do; an "
        f"environment runs its execs one at a time, so all hogs share one): {os.cpu_count()} CPU "
        "burners (busy loops), a memory hog (touches 16 MiB chunks up to 2 GiB, drops them, "
        "again), a fork bomb (forks children that pause until fork fails, then keeps retrying "
        "every ms; 4096 is the program's own safety stop) and a disk filler (1 MiB writes, fsync "
        "every 32 MiB, on the same btrfs pool as production's database; at most 1 GiB of it "
        "kept: the pool is 64 GiB, and filling it is the quota test's job, not this one's). "
        "The bomb runs alone until fork fails, then the others start; a hog that is killed is "
        "started again at once. Each noisy block starts the exec, waits for the hogs plus 1 s, "
        "sends its requests, stops the hogs, then `sync -f` on the pool so no writeback leaks "
        "into the next block. Idle: the same preview with its PostgreSQL, Redis and application "
        "running and no traffic.",
        "",
        f"Limits found on the cgroups during the last noisy block: {limit_text(noisy[-1].get('cgroup', {}))}. "
        "Production's application has its own CPU quota (`resources.cpu` in examples/todo); the "
        "last column is the share of its quota periods in which it was throttled.",
        "",
        "| neighbour | requests | failed | p50 ms | p99 ms | max ms | POST p99 ms | neighbour CPU (cores) | host CPU busy | production app throttled |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, s in (("idle", si), ("noisy", sn)):
        lines.append(f"| {label} | {s['n']} | {s['bad']} | {ms(s['p50'])} | {ms(s['p99'])} | {ms(s['max'])} | "
                     f"{ms(s['post_p99'])} | {s['cores']:.2f} | {s['busy'] * 100:.0f}% | "
                     f"{s['prod_throttled']} of {s['prod_periods']} periods |")
    lines += [
        "",
        f"**p99 noisy / p99 idle = {ratio:.2f}x: {verdict} the at-most-{TARGET}x target.** "
        f"Per round (p99 of that round's {REQUESTS} + {REQUESTS}): median {med:.2f}x, "
        f"min {rr[0]:.2f}x, max {rr[-1]:.2f}x.",
        "",
        "| round | order | p99 idle ms | p99 noisy ms | ratio | neighbour CPU idle / noisy (cores) | host busy idle / noisy |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for i, order, a, n, rt in per_round:
        lines.append(f"| {i} | {' '.join(o[0].upper() for o in order)} | {ms(a['p99'])} | {ms(n['p99'])} | "
                     f"{rt:.2f}x | {a['cores']:.2f} / {n['cores']:.2f} | {a['busy'] * 100:.0f}% / {n['busy'] * 100:.0f}% |")
    lines += ["", "What the neighbour did in each noisy block (from the hogs' own report at the end and "
              "the exec's cgroup, read right after the block's last request):", ""]
    for i, order, a, n, rt in per_round:
        lines.append(f"- round {i}: {hog_line(b.rounds[i - 1][1]['noisy'])}.")
    notes = []
    if shortfall:
        notes.append(f"Blocks stopped at the {BLOCK_CAP_S} s cap before all requests: " + "; ".join(shortfall) + ".")
    if bad:
        notes.append(f"{bad} requests failed (status not 200/201, or no answer within {REQUEST_TIMEOUT_S} s); "
                     "their time until failure is in the percentiles.")
    if left:
        notes.append(f"{len(left)} hog processes were still in the exec cgroup after the exec returned; "
                     "killed by pid before the neighbour was destroyed.")
    if notes:
        lines += [""] + notes
    old = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    history = []
    if BEGIN in old and END in old:
        sec = old.split(BEGIN, 1)[1].split(END, 1)[0]
        if HISTORY in sec:
            history = [l for l in sec.split(HISTORY, 1)[1].splitlines() if l.startswith("- ")]
    runs = [(float(m.group(1)), m.group(2)) for m in
            (re.search(r"\*\*([\d.]+)x\*\* \((meets|MISSES)", l) for l in [hist, *history]) if m]
    rs = sorted(r for r, _ in runs)
    lines += ["", f"Across all {len(runs)} runs recorded below: p99 ratio median {median(rs):.2f}x "
              f"({rs[0]:.2f}-{rs[-1]:.2f}x); {sum(v == 'MISSES' for _, v in runs)} of them miss the "
              f"{TARGET}x target."]
    lines += ["", HISTORY, "", hist, *history, END]
    section = "\n".join(lines) + "\n"
    if QUICK:
        print(section, file=sys.stderr)
        return
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = old.rstrip("\n") + "\n\n" + section
    with open(RESULTS + ".tmp", "w") as f:
        f.write(text.rstrip("\n") + "\n")
    os.replace(RESULTS + ".tmp", RESULTS)
    log(hist[2:])


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        log("needs root (the daemon makes loop devices, mounts and cgroups)")
        return 1
    started = datetime.datetime.now(datetime.timezone.utc)
    b = Bench(sys.argv[1])
    left = set()
    try:
        b.run()
    finally:
        left = b.stop()
    report(b, started, left)
    return 0


if __name__ == "__main__":
    sys.exit(main())
