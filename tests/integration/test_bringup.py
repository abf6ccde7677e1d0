"""Bring-up order and the start-up CPU boost of a preview's application.

A preview's application starts while its deploy hook runs (as on Upsun) and counts as healthy
only from an answer after the hook ended; production runs the hook first. While a preview's
application starts it has no CPU share of its own (only the environment's ceiling); once it
answers healthy it runs with the preview profile's share, as the kernel holds it. An application
that exits until the deploy hook has done its work still comes up. One daemon for the module.
"""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import Daemon

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")

PROFILE_CPU_MILLIS = 250
HOOK_SECONDS = 2

# The app refuses to start until the deploy hook of its own VERSION has run (a schema its code
# needs, say): it exits 3, and the supervisor restarts it.
CONFIG = f"""\
applications:
  web:
    source:
      root: "."
    type: "python:3.11"
    web:
      commands:
        start: "echo TRY $(date +%s.%N) >&2; test -e data/deployed-$(cat VERSION) || exit 3; exec python3 app.py"
      port: 8000
    hooks:
      deploy: |
        echo "DEPLOY-START $(date +%s.%N)"
        sleep {HOOK_SECONDS}
        touch data/deployed-$(cat VERSION)
        echo "DEPLOY-END $(date +%s.%N)"
    mounts:
      "/data":
        source: storage
        source_path: data
    resources:
      cpu: 0.5
      memory: 128M
environments:
  preview:
    profile:
      cpu: {PROFILE_CPU_MILLIS / 1000}
      memory: 128M
"""

APP = r'''
import os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
print("STARTED %.6f" % time.time(), file=sys.stderr, flush=True)

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), H).serve_forever()
'''


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, env=GIT_ENV,
                          capture_output=True, text=True).stdout


def make_repo(path):
    os.makedirs(os.path.join(path, ".branchbox"))
    for name, text in ((".branchbox/config.yaml", CONFIG), ("app.py", APP), ("VERSION", "1\n")):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "app")
    return path


def branch_with_version(repo, name, version):
    """A branch whose app needs its own deploy hook run (the clone has only production's)."""
    git(repo, "checkout", "-q", "-B", name, "main")
    with open(os.path.join(repo, "VERSION"), "w") as f:
        f.write(f"{version}\n")
    git(repo, "commit", "-q", "-am", f"version {version}")
    git(repo, "checkout", "-q", "main")


@pytest.fixture(scope="module")
def d():
    tmp = tempfile.mkdtemp(prefix="bbx-bringup-")
    daemon = Daemon(tmp, make_repo(os.path.join(tmp, "repo"))).start()
    try:
        daemon.cli("deploy", timeout=300)
        yield daemon
    finally:
        daemon.stop()
        try:
            daemon.down()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def deploy_times(d, name):
    text = open(os.path.join(d.state, "logs", name, "deploy.log")).read()
    start = [float(x) for x in re.findall(r"DEPLOY-START (\d+\.\d+)", text)]
    end = [float(x) for x in re.findall(r"DEPLOY-END (\d+\.\d+)", text)]
    assert start and end, text
    return start[-1], end[-1]


def app_starts(d, name, what="STARTED"):
    out = d.cli("env", "logs", name, "web").stdout
    return [float(x) for x in re.findall(what + r" (\d+\.\d+)", out)]


def quota_files(d, name):
    """The cpu quota file of the application's own cgroup (below the environment's)."""
    import hashlib
    prefix = "d-" + hashlib.sha256(os.path.realpath(d.state).encode()).hexdigest()[:8]
    pats = [f"/sys/fs/cgroup/cpu/branchbox/{prefix}/env-{name}/web-*/cpu.cfs_quota_us",
            f"/sys/fs/cgroup/cpu,cpuacct/branchbox/{prefix}/env-{name}/web-*/cpu.cfs_quota_us",
            f"/sys/fs/cgroup/branchbox/{prefix}/env-{name}/web-*/cpu.max",
            f"/sys/fs/cgroup/unified/branchbox/{prefix}/env-{name}/web-*/cpu.max"]
    return [p for pat in pats for p in glob.glob(pat)]


def quota_millis(path):
    """None for no limit of its own, else thousandths of a CPU."""
    text = open(path).read().split()
    if path.endswith("cpu.max"):
        return None if text[0] == "max" else int(text[0]) * 1000 // int(text[1])
    q = int(text[0])
    period = int(open(os.path.join(os.path.dirname(path), "cpu.cfs_period_us")).read())
    return None if q < 0 else q * 1000 // period


class QuotaSampler(threading.Thread):
    def __init__(self, d, name):
        super().__init__(daemon=True)
        self.d, self.name, self.values = d, name, []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            for p in quota_files(self.d, self.name):
                try:
                    hook = os.path.basename(os.path.dirname(p)).startswith("web-deploy-")
                    self.values.append((hook, quota_millis(p)))
                except (OSError, ValueError, IndexError):
                    pass
            time.sleep(0.05)


def test_production_runs_its_deploy_hook_before_the_app(d):
    start, end = deploy_times(d, "main")
    starts = app_starts(d, "main")
    assert starts, "production's app never logged its start"
    assert min(starts) > end, (starts, start, end)


def test_preview_app_starts_during_the_hook_and_is_ready_after_it(d):
    branch_with_version(d.repo, "overlap", 2)
    sampler = QuotaSampler(d, "overlap")
    sampler.start()
    try:
        d.cli("env", "create", "overlap", timeout=300)
        returned = time.time()
    finally:
        sampler.stopping.set()
        sampler.join(30)
    start, end = deploy_times(d, "overlap")
    tries, starts = app_starts(d, "overlap", "TRY"), app_starts(d, "overlap")
    # The app was started while the hook ran (and exited 3, the hook's work not being there
    # yet); it came up after the hook, and the create returned after that.
    assert any(start <= t < end for t in tries), (tries, start, end)
    assert starts and min(starts) > end, (starts, end)
    assert returned > max(starts)
    info = d.cli("env", "info", "overlap", "--json").stdout
    assert '"ready"' in info
    # The app and the deploy hook boosted while it started (no share of their own), the
    # profile's share once healthy.
    assert (False, None) in sampler.values, sampler.values
    assert (True, None) in sampler.values, sampler.values
    files = quota_files(d, "overlap")
    assert files, "no cgroup for the application"
    assert not [p for p in files if "/web-deploy-" in p], files
    assert [quota_millis(p) for p in files] == [PROFILE_CPU_MILLIS] * len(files)


def test_restarted_preview_app_keeps_the_profile_share(d):
    d.cli("env", "stop", "overlap", timeout=120)
    d.cli("env", "start", "overlap", timeout=300)
    files = quota_files(d, "overlap")
    assert files and [quota_millis(p) for p in files] == [PROFILE_CPU_MILLIS] * len(files)
    d.cli("env", "destroy", "overlap", timeout=120)


def test_out_of_memory_order_previews_then_production_then_daemon(d):
    """Were the whole host to run out of memory, the kernel takes a preview's processes
    first, production's next and the daemon last; none inherits the daemon's own value."""
    import json
    branch_with_version(d.repo, "oomorder", 3)
    d.cli("env", "create", "oomorder", timeout=300)
    try:
        def adj(name):
            procs = json.loads(d.cli("env", "info", name, "--json").stdout)["processes"]
            pids = [p["pid"] for p in procs if p.get("pid")]
            assert pids, procs
            return {int(open(f"/proc/{pid}/oom_score_adj").read()) for pid in pids}
        assert adj("oomorder") == {500}
        assert adj("main") == {0}
        # Lowering its own needs CAP_SYS_RESOURCE, which a daemon in a container may lack:
        # then it says so and stays at 0.
        caps = int(re.search(r"CapEff:\s+([0-9a-f]+)",
                             open(f"/proc/{d.proc.pid}/status").read()).group(1), 16)
        if caps & (1 << 24):
            assert int(open(f"/proc/{d.proc.pid}/oom_score_adj").read()) == -500
        else:
            assert int(open(f"/proc/{d.proc.pid}/oom_score_adj").read()) == 0
            assert "cannot lower the daemon's oom_score_adj" in d.read_log()
    finally:
        d.cli("env", "destroy", "oomorder", timeout=120)
