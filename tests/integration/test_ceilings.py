"""Ceilings: no preview can starve production or the host.

A real production (the todo example on PostgreSQL and Redis) answers requests through the
preview proxy for the whole run while a preview runs a fork bomb, a memory hog, a CPU burner
and a disk filler through `env exec`. Production's latency is recorded per phase (printed and
attached to the report as properties, never compared with a threshold): what the test asserts
is that production answered every request, kept its processes, and could still write while the
preview's disk was full, and that each hog was stopped by its ceiling. Then the caps: the
N+1st preview of a token, the M+1st in all, and a preview that would eat into the pool's
reserve for production are refused with a message naming the limit.
"""
import glob
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import BIN, ROOT, Daemon
from echo_project import git_branch, make_echo_repo, start_echo_daemon, stop_echo_daemon

EXAMPLE = os.path.join(ROOT, "examples", "todo")
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
MiB = 1 << 20

# Production's config governs every ceiling of its previews: small disks so the filler is
# quick, a preview profile roomy enough that a fork bomb meets its pids limit before its
# memory limit.
DB_DISK, CACHE_DISK = 256 * MiB, 64 * MiB
PROFILE_MEMORY, PROFILE_CPU = 512 * MiB, 500
SERVICE_MEMORY, SERVICE_CPU = 256 * MiB, 500  # the config's defaults
APP_MEMORY, APP_CPU = 256 * MiB, 500          # examples/todo's web resources
SERVICE_PIDS, APP_PIDS = 512, 1024            # ceilings.h


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, env=GIT_ENV,
                          capture_output=True, text=True).stdout


def todo_repo(path):
    subprocess.run([os.path.join(EXAMPLE, "make-repo.sh"), path], check=True, capture_output=True)
    cfg = os.path.join(path, ".branchbox", "config.yaml")
    with open(cfg) as f:
        text = f.read()
    text = text.replace('    type: "postgresql:15"\n    disk: 1G\n',
                        f'    type: "postgresql:15"\n    disk: {DB_DISK // MiB}M\n')
    text = text.replace('    type: "redis:7.0"\n', f'    type: "redis:7.0"\n    disk: {CACHE_DISK // MiB}M\n')
    text = text.replace("      cpu: 0.25\n      memory: 128M\n",
                        f"      cpu: {PROFILE_CPU / 1000}\n      memory: {PROFILE_MEMORY // MiB}M\n")
    # The hogs are to meet their ceilings, not the budget (whose own tests are test_budget.py):
    # a memory budget above what the profile lets the preview hold.
    text = text.replace("      memory: 512M\n      disk: 2G\n", "      memory: 8G\n      disk: 2G\n")
    assert "      memory: 8G\n      disk: 2G\n" in text
    assert f"disk: {DB_DISK // MiB}M" in text and f"disk: {CACHE_DISK // MiB}M" in text
    assert f"memory: {PROFILE_MEMORY // MiB}M" in text
    with open(cfg, "w") as f:
        f.write(text)
    git(path, "commit", "-q", "-am", "ceilings test: small disks, a roomy preview profile")
    git(path, "branch", "hog", "main")
    return path


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(d, method, path, body=None, token=None, timeout=30):
    if token:
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
    else:
        conn = UnixHTTPConnection(d.socket, timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def p99(values):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * 0.99))] if v else float("nan")


class ProductionLoad(threading.Thread):
    """Requests to production's /healthz (which asks PostgreSQL and Redis) through the preview
    proxy, one after another, each labelled with the phase the test is in."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d = d
        self.phase = "idle"
        self.samples = []  # (phase, seconds, status or error text)
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            phase, t0 = self.phase, time.monotonic()
            try:
                status, _ = call(self.d, "GET", "/preview/main/healthz", timeout=30)
            except OSError as e:
                status = f"{type(e).__name__}: {e}"
            self.samples.append((phase, time.monotonic() - t0, status))
            time.sleep(0.02)

    def stop(self):
        self.stopping.set()
        self.join(60)

    def report(self):
        phases = []
        for phase, _, _ in self.samples:
            if phase not in phases:
                phases.append(phase)
        rows = []
        for phase in phases:
            lat = [t for p, t, _ in self.samples if p == phase]
            rows.append((phase, len(lat), p99(lat) * 1000, max(lat) * 1000))
        return rows

    def failures(self):
        return [(p, s) for p, _, s in self.samples if s != 200]


def cgroup_layout():
    """("v2", base) or ("v1", base), like sandbox_cgroup_detect()."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2", "/sys/fs/cgroup"
    try:
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
            if {"memory", "pids", "cpu"} <= set(f.read().split()):
                return "v2", "/sys/fs/cgroup/unified"
    except OSError:
        pass
    return "v1", "/sys/fs/cgroup"


def cgroup_prefix(d):
    import hashlib
    return "d-" + hashlib.sha256(os.path.realpath(d.state).encode()).hexdigest()[:8]


def cgroup_dir(d, env, controller, leaf=""):
    mode, base = cgroup_layout()
    parts = [base] + ([] if mode == "v2" else [controller]) + ["branchbox", cgroup_prefix(d), f"env-{env}"]
    return os.path.join(*parts, leaf)


def read(path):
    with open(path) as f:
        return f.read().strip()


def env_limits(d, env):
    """The environment cgroup's memory, pids and cpu limits, as the kernel holds them."""
    mode, _ = cgroup_layout()
    if mode == "v2":
        cg = cgroup_dir(d, env, None)
        quota, period = read(os.path.join(cg, "cpu.max")).split()
        return {"memory": int(read(os.path.join(cg, "memory.max"))),
                "pids": int(read(os.path.join(cg, "pids.max"))),
                "cpu_millis": int(quota) * 1000 // int(period)}
    return {"memory": int(read(os.path.join(cgroup_dir(d, env, "memory"), "memory.limit_in_bytes"))),
            "pids": int(read(os.path.join(cgroup_dir(d, env, "pids"), "pids.max"))),
            "cpu_millis": int(read(os.path.join(cgroup_dir(d, env, "cpu"), "cpu.cfs_quota_us")))
            * 1000 // int(read(os.path.join(cgroup_dir(d, env, "cpu"), "cpu.cfs_period_us")))}


class LeafSampler(threading.Thread):
    """Reads a file of the exec's own cgroup (below the environment's) while it runs: the
    cgroup is removed when the exec ends."""

    def __init__(self, d, env, controller, file):
        super().__init__(daemon=True)
        self.pattern = os.path.join(cgroup_dir(d, env, controller), "exec-*", file)
        self.values = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            for p in glob.glob(self.pattern):
                try:
                    self.values.append(read(p))
                except OSError:
                    pass
            time.sleep(0.1)

    def stop(self):
        self.stopping.set()
        self.join(30)
        return self.values


def env_exec(d, name, *argv, timeout=None):
    args = ["env", "exec", name]
    if timeout:
        args += ["--timeout", str(timeout)]
    return d.cli(*args, "--", *argv, check=False, timeout=600)


def env_sh(d, name, script, timeout=None):
    return env_exec(d, name, "/bin/sh", "-c", script, timeout=timeout)


def processes(d, name):
    info = json.loads(d.cli("env", "info", name, "--json").stdout)
    return {p["name"]: (p["state"], p["pid"], p["restarts"]) for p in info["processes"]}


@pytest.fixture(scope="module")
def todo():
    tmp = tempfile.mkdtemp(prefix="bbx-ceil-")
    repo = todo_repo(os.path.join(tmp, "repo"))
    d = Daemon(tmp, repo).start()
    try:
        d.cli("deploy", timeout=600)
        yield d
    finally:
        d.stop()
        try:
            d.down()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def test_hogs_in_a_preview_leave_production_serving(todo, record_testsuite_property):
    d = todo
    d.cli("env", "create", "hog", timeout=600)
    info = json.loads(d.cli("env", "info", "hog", "--json").stdout)

    # The environments' cgroups carry the sums of their processes' limits: the services, the
    # web application and one one-shot of each kind (an exec, a hook).
    prod = env_limits(d, "main")
    assert prod == {"memory": 2 * SERVICE_MEMORY + 2 * APP_MEMORY + SERVICE_MEMORY,
                    "pids": 3 * SERVICE_PIDS + 2 * APP_PIDS,
                    "cpu_millis": 3 * SERVICE_CPU + 2 * APP_CPU}, prod
    hog = env_limits(d, "hog")
    assert hog == {"memory": 3 * SERVICE_MEMORY + 2 * PROFILE_MEMORY,
                   "pids": 3 * SERVICE_PIDS + 2 * APP_PIDS,
                   "cpu_millis": 3 * SERVICE_CPU + 2 * PROFILE_CPU}, hog
    assert info["ceilings"] == {"memory_bytes": hog["memory"], "pids": hog["pids"],
                                "cpu": hog["cpu_millis"] / 1000, "disk_bytes": DB_DISK + CACHE_DISK}
    assert info["volume"]["quota_bytes"] == DB_DISK + CACHE_DISK

    before = processes(d, "main")
    assert all(state == "running" for state, _, _ in before.values()), before
    load = ProductionLoad(d)
    load.start()
    try:
        time.sleep(5)

        # A fork bomb: stopped by the pids limit of its cgroup, killed whole at its deadline.
        load.phase = "fork bomb"
        pids = LeafSampler(d, "hog", "pids", "pids.current")
        pids.start()
        # The shell replaces itself with a sleeper (no fork needed) so the exec lasts until
        # its deadline instead of ending with the first fork that fails.
        p = env_sh(d, "hog", "bomb() { bomb | bomb & }; bomb; "
                   "exec python3 -c 'import time; time.sleep(120)'", timeout=25)
        seen = [int(v) for v in pids.stop()]
        assert p.returncode == 124, (p.returncode, p.stdout[-2000:], p.stderr)
        assert seen and max(seen) <= APP_PIDS, max(seen or [0])
        assert max(seen) >= APP_PIDS - 8, f"the bomb never reached the limit: {max(seen)}"
        assert glob.glob(os.path.join(cgroup_dir(d, "hog", "pids"), "exec-*")) == []

        # A memory hog: killed by the OOM killer inside its cgroup before it gets past the
        # preview profile's memory.
        load.phase = "memory hog"
        hog_py = ("mb = 0; chunks = []\n"
                  "while mb < 4096:\n"
                  "    b = bytearray(32 << 20)\n"
                  "    for i in range(0, len(b), 4096): b[i] = 1\n"
                  "    chunks.append(b); mb += 32; print(mb, flush=True)\n")
        p = env_exec(d, "hog", "python3", "-c", hog_py)
        allocated = [int(l) for l in p.stdout.split() if l.isdigit()]
        assert p.returncode == 137, (p.returncode, p.stdout[-500:], p.stderr)
        assert allocated and max(allocated) < PROFILE_MEMORY // MiB, allocated[-3:]

        # A CPU burner: four spinning processes throttled to the profile's CPU share, killed
        # at the deadline.
        load.phase = "cpu burner"
        throttled = LeafSampler(d, "hog", "cpu", "cpu.stat")
        throttled.start()
        p = env_sh(d, "hog", "for i in 1 2 3 4; do python3 -c 'while True: pass' & done; wait",
                   timeout=12)
        stats = throttled.stop()
        assert p.returncode == 124, (p.returncode, p.stderr)
        counts = [int(m.group(1)) for s in stats for m in [re.search(r"nr_throttled (\d+)", s)] if m]
        assert counts and max(counts) > 0, stats[-1:]

        # A disk filler: stopped by the volume's quota (what it writes beyond the clone).
        load.phase = "disk filler"
        fill_py = ("import errno, os\n"
                   "mb, err = 0, None\n"
                   "block = bytes([171]) * (1 << 20)\n"
                   "try:\n"
                   "    with open('/app/uploads/fill', 'wb') as f:\n"
                   "        while mb < 4096:\n"
                   "            f.write(block); f.flush(); os.fsync(f.fileno()); mb += 1\n"
                   "except OSError as e:\n"
                   "    err = e.errno\n"
                   "print(mb, err)\n")
        p = env_exec(d, "hog", "python3", "-c", fill_py)
        assert p.returncode == 0, (p.stdout, p.stderr)
        written, err = p.stdout.split()
        assert err in ("122", "28"), p.stdout  # EDQUOT, ENOSPC
        assert 0 < int(written) <= (DB_DISK + CACHE_DISK) // MiB, p.stdout

        # Production writes while the preview's disk is full: a file in its volume and a row
        # in its database, through its application.
        load.phase = "production writes, preview full"
        p = d.cli("env", "exec", "main", "--", "python3", "-c",
                  "import os\n"
                  "with open('/app/uploads/prod-write', 'wb') as f:\n"
                  "    f.write(b'p' * (64 << 20)); f.flush(); os.fsync(f.fileno())\n"
                  "print(os.path.getsize('/app/uploads/prod-write'))", check=False, timeout=300)
        assert p.returncode == 0 and p.stdout.strip() == str(64 << 20), (p.stdout, p.stderr)
        status, body = call(d, "POST", "/preview/main/api/todos", {"title": "written while a preview is full"})
        assert status == 201, body
        status, body = call(d, "GET", "/preview/main/api/todos")
        assert status == 200 and b"written while a preview is full" in body
        # ... and the preview is still full.
        p = env_sh(d, "hog", "head -c 4194304 /dev/zero > /app/uploads/more && sync /app/uploads/more")
        assert p.returncode != 0 and "quota" in (p.stdout + p.stderr).lower(), (p.stdout, p.stderr)
        time.sleep(2)
    finally:
        load.stop()

    report = load.report()
    lines = [f"production through the preview proxy, {n} requests while {phase}: "
             f"p99 {p99ms:.1f} ms, max {maxms:.1f} ms" for phase, n, p99ms, maxms in report]
    print("\n" + "\n".join(lines))
    for phase, n, p99ms, _ in report:
        record_testsuite_property(f"production_p99_ms[{phase}]", f"{p99ms:.1f}")
        record_testsuite_property(f"production_requests[{phase}]", n)
    assert load.failures() == [], load.failures()[:10]
    assert {phase for phase, _, _, _ in report} >= {"idle", "fork bomb", "memory hog", "cpu burner",
                                                    "disk filler"}
    # Production kept every process: nothing restarted, nothing was killed.
    assert processes(d, "main") == before
    d.cli("env", "destroy", "hog", timeout=300)


def token(d, name):
    """A new agent token for pr-*: (the token, its id)."""
    t = json.loads(d.cli("token", "create", "--agent", name, "--env", "pr-*", "--verbs",
                         "env:read,env:create,env:destroy", "--ttl", "1h", "--json").stdout)
    return t["token"], t["id"]


def create(d, name, tok=None):
    if tok:
        return call(d, "POST", "/v1/environments", {"name": name}, token=tok, timeout=300)
    return call(d, "POST", "/v1/environments", {"name": name}, timeout=300)


def test_preview_caps_per_token_and_in_total():
    d = start_echo_daemon(["--max-previews", "3", "--max-previews-per-token", "2"])
    try:
        for b in ("pr-a1", "pr-a2", "pr-a3", "pr-b1", "pr-b2", "pr-root"):
            git_branch(d.repo, b)
        (a, a_id), (b, _) = token(d, "agent-a"), token(d, "agent-b")
        assert create(d, "pr-a1", a)[0] == 201
        assert create(d, "pr-a2", a)[0] == 201
        # The third of one token: refused, naming the limit and how many it has.
        status, body = create(d, "pr-a3", a)
        err = json.loads(body)["error"]
        assert status == 429 and err["code"] == "limit_reached", body
        assert err["message"] == (f"preview 'pr-a3' refused: token {a_id} (agent-a) has 2 previews, "
                                  "the most one token may have (serve --max-previews-per-token 2): "
                                  "destroy one first"), err
        # Another token still may, up to the total.
        assert create(d, "pr-b1", b)[0] == 201
        status, body = create(d, "pr-b2", b)
        err = json.loads(body)["error"]
        assert status == 429 and err["message"] == (
            "preview 'pr-b2' refused: 3 previews exist, the most this daemon allows "
            "(serve --max-previews 3): destroy one first"), err
        # The total binds the local administrator too; the CLI shows the message.
        p = d.cli("env", "create", "pr-root", check=False)
        assert p.returncode != 0 and "3 previews exist, the most this daemon allows" in p.stderr
        # Nothing of the refused ones exists.
        names = {e["name"] for e in json.loads(d.cli("env", "list", "--json").stdout)}
        assert names == {"main", "pr-a1", "pr-a2", "pr-b1"}
        # A place freed is a place to take again.
        d.cli("env", "destroy", "pr-a1", token=a, via_http=True, timeout=120)
        assert create(d, "pr-a3", a)[0] == 201
    finally:
        stop_echo_daemon(d)


def pool_free(d):
    with open(os.path.join(d.state, "pool.json")) as f:
        root = json.load(f)["root"]
    os.sync()
    st = os.statvfs(root)
    return st.f_bavail * st.f_frsize


def wait_ready(d, name, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = json.loads(d.cli("env", "info", name, "--json").stdout)
        if info["state"] == "ready":
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} not ready after a restart: {info}")


def test_pool_reserve_is_production_s():
    """A preview is admitted only while what previews may still write, plus what it may write,
    leaves the reserve free; production itself is never bounded by it."""
    d = start_echo_daemon()
    try:
        for b in ("pr-1", "pr-2"):
            git_branch(d.repo, b)
        # The echo project has no service: a preview may write the budget's disk (2G).
        disk = 2 << 30
        free = pool_free(d)
        reserve = free - disk - (1 << 30)  # room for one preview, with 1G to spare
        d.stop()
        d.extra_args = ["--pool-reserve", str(reserve)]
        d.start()
        wait_ready(d, "main")
        info = json.loads(d.cli("env", "create", "pr-1", "--json", timeout=300).stdout)
        assert info["volume"]["quota_bytes"] == disk and info["ceilings"]["disk_bytes"] == disk
        # The first preview wrote nothing yet, but it may: its 2G are promised.
        status, body = create(d, "pr-2")
        err = json.loads(body)["error"]
        assert status == 429 and err["code"] == "limit_reached", body
        assert re.fullmatch(r"preview 'pr-2' refused: the pool keeps [0-9.]+G free for production "
                            r"\(serve --pool-reserve [0-9.]+G\): it has [0-9.]+G free, previews may "
                            r"still write 2(\.0)?G, and this one may write 2G", err["message"]), err
        # Once the first preview is gone, the second fits.
        d.cli("env", "destroy", "pr-1", timeout=300)
        assert create(d, "pr-2")[0] == 201
    finally:
        stop_echo_daemon(d)


def test_copy_pool_says_it_does_not_bound_a_preview():
    """A pool whose driver cannot bound one volume: the preview is made, and its info says in
    so many words that its disk is not bounded (so does pool info), rather than showing a
    quota nothing enforces."""
    tmp = tempfile.mkdtemp(prefix="bbx-ceil-copy-")
    d = None
    try:
        repo = make_echo_repo(os.path.join(tmp, "repo"))
        git_branch(repo, "pr-1")
        d = Daemon(tmp, repo)
        state = os.path.join(tmp, "state")
        subprocess.run([BIN, "pool", "init", "--driver", "copy", "--state", state], check=True,
                       capture_output=True)
        d.start()
        try:
            d.cli("deploy", timeout=300)
            info = json.loads(d.cli("env", "create", "pr-1", "--json", timeout=300).stdout)
            assert info["volume"]["quota_bytes"] is None
            assert info["ceilings"]["disk_bytes"] == 2 << 30
            assert "a volume is a plain directory" in info["ceilings"]["disk_not_enforced"]
            text = d.cli("env", "info", "pr-1").stdout
            assert "disk:     2G beyond the clone, NOT ENFORCED: a volume is a plain directory" in text
        finally:
            d.stop()
        pool = json.loads(d.cli("pool", "info", "--json").stdout)
        assert pool["driver"] == "copy" and pool["quota_enforced"] is False
    finally:
        try:
            if d:
                d.stop()
                d.down()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
