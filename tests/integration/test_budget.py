"""Budgets: the daemon meters each preview (CPU seconds, peak memory, disk beyond its clone, wall
time) against production's policy narrowed by the creating token's, records an audit event at 80%
and stops the preview at 100%; a stopped-by-budget preview keeps its data and cannot start again."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import Daemon

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")

# Production's policy: small budgets so the tests are short. A preview gets a whole CPU, so a
# burner uses its CPU seconds about as fast as the wall clock runs.
CONFIG = """\
applications:
  web:
    source:
      root: "."
    type: "python:3.11"
    web:
      commands:
        start: "python3 -m http.server 8000"
      port: 8000
    mounts:
      "/data": {source: storage, source_path: data}
environments:
  preview:
    profile: {cpu: 1, memory: 512M}
    ttl: 1h
    budget: {cpu_seconds: 3, memory: 300M, disk: 1G, wall_time: 1h}
"""

BURN = ["python3", "-c", "while True: pass"]


def git(repo, *args):
    subprocess.run(["git", "-C", repo, *args], check=True, env=GIT_ENV, capture_output=True)


def branch(repo, name, config=None):
    """A branch from main; with config, its own .branchbox/config.yaml (which may narrow)."""
    git(repo, "branch", "-f", name, "main")
    if config is None:
        return
    wt = tempfile.mkdtemp(prefix="bbx-wt-")
    try:
        git(repo, "worktree", "add", "-q", "-f", wt, name)
        with open(os.path.join(wt, ".branchbox", "config.yaml"), "w") as f:
            f.write(config)
        git(wt, "commit", "-q", "-am", f"config for {name}")
    finally:
        git(repo, "worktree", "remove", "--force", wt)
        shutil.rmtree(wt, ignore_errors=True)


def assert_clean_log(d):
    """The daemon (built with ASan and UBSan) reported no memory or undefined-behaviour error."""
    bad = [l for l in d.read_log().splitlines() if "Sanitizer" in l or "runtime error:" in l]
    assert not bad, "\n".join(bad[:20])


@pytest.fixture(scope="module")
def prod():
    tmp = tempfile.mkdtemp(prefix="bbx-budget-")
    repo = os.path.join(tmp, "repo")
    os.makedirs(os.path.join(repo, ".branchbox"))
    with open(os.path.join(repo, ".branchbox", "config.yaml"), "w") as f:
        f.write(CONFIG)
    with open(os.path.join(repo, "index.html"), "w") as f:
        f.write("ok\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "budget"]):
        git(repo, *args)
    d = Daemon(tmp, repo).start()
    try:
        d.cli("deploy", timeout=300)
        yield d
    finally:
        d.stop()
        try:
            assert_clean_log(d)
        finally:
            try:
                d.down()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


def info(d, name):
    return json.loads(d.cli("env", "info", name, "--json").stdout)


def budget(d, name, **kw):
    return json.loads(d.cli("env", "budget", name, "--json", **kw).stdout)["budget"]


def audit(d, name):
    out = d.cli("audit", "log", "--env", name, "--limit", "1000", "--json").stdout
    return [r for r in json.loads(out)["records"] if r["action"].startswith("environment.budget_")]


def wait_for(what, check, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def mint(d, *args, token=None, check=True):
    p = d.cli("token", "create", *args, "--json", token=token, check=check)
    return json.loads(p.stdout) if p.returncode == 0 else p


def test_cpu_burner_is_warned_then_stopped(prod):
    branch(prod.repo, "pr-cpu")
    prod.cli("env", "create", "pr-cpu", timeout=300)
    b = budget(prod, "pr-cpu")
    assert b["cpu_seconds"]["limit"] == 3 and b["state"] == "ok", b
    assert b["cpu_seconds"]["used"] < 3 and b["source"] == "production's config"
    assert set(b) >= {"cpu_seconds", "memory", "disk", "wall_time"}
    # env info carries the same object.
    assert info(prod, "pr-cpu")["budget"]["cpu_seconds"]["limit"] == 3

    # The burner runs until the budget is used up: it is killed, well before its own timeout.
    t0 = time.monotonic()
    p = prod.cli("env", "exec", "pr-cpu", "--timeout", "300", "--", *BURN, check=False, timeout=300)
    assert time.monotonic() - t0 < 120
    assert p.returncode != 0

    i = wait_for("the preview to stop", lambda: (lambda i: i if i["state"] == "stopped" else None)(
        info(prod, "pr-cpu")))
    assert i["error"].startswith("budget exhausted: cpu_seconds "), i
    assert all(p["state"] == "stopped" for p in i["processes"]), i["processes"]

    recs = audit(prod, "pr-cpu")
    actions = [r["action"] for r in recs]
    assert actions == ["environment.budget_warning", "environment.budget_exhausted"], recs
    warning, exhausted = recs
    assert warning["seq"] < exhausted["seq"]
    assert warning["reason"].startswith("cpu_seconds ") and warning["reason"].endswith("%)")
    assert exhausted["reason"].startswith("budget exhausted: cpu_seconds ")
    assert exhausted["principal"] == "system:budget" and exhausted["outcome"] == "stopped"

    b = budget(prod, "pr-cpu")
    cpu = b["cpu_seconds"]
    assert cpu["used"] >= 3 and cpu["left"] == 0 and cpu["percent"] >= 100, b
    assert b["state"] == "exhausted" and b["exhausted"].startswith("cpu_seconds ")
    assert b["warned"] == ["cpu_seconds"]
    human = prod.cli("env", "budget", "pr-cpu").stdout
    assert "cpu_seconds" in human and "exhausted" in human

    # It cannot be started again; its data stays until it expires.
    p = prod.cli("env", "start", "pr-cpu", check=False, timeout=120)
    assert p.returncode != 0 and "used up its budget (cpu_seconds" in p.stderr, p.stderr
    assert info(prod, "pr-cpu")["state"] == "stopped"
    assert os.path.isdir(os.path.join(prod.state, "pool")) and "volume" in info(prod, "pr-cpu")
    # Nothing is recorded twice while it sits there.
    time.sleep(2.5)
    assert len(audit(prod, "pr-cpu")) == 2
    prod.cli("env", "destroy", "pr-cpu", timeout=120)


def test_memory_peak_stops_the_preview(prod):
    # The branch narrows memory further (allowed: narrowing), so a 120M allocation is over.
    cfg = CONFIG.replace("memory: 300M, disk", "memory: 100M, disk")
    branch(prod.repo, "pr-mem", cfg)
    prod.cli("env", "create", "pr-mem", timeout=300)
    assert budget(prod, "pr-mem")["memory"]["limit"] == 100 << 20
    prod.cli("env", "exec", "pr-mem", "--", "python3", "-c",
             "import time; b = bytearray(120 << 20); time.sleep(30)", check=False, timeout=120)
    i = wait_for("the preview to stop", lambda: (lambda i: i if i["state"] == "stopped" else None)(
        info(prod, "pr-mem")))
    assert i["error"].startswith("budget exhausted: memory "), i
    b = budget(prod, "pr-mem")
    assert b["memory"]["used"] >= 100 << 20 and b["memory"]["percent"] >= 100
    prod.cli("env", "destroy", "pr-mem", timeout=120)


def test_disk_written_beyond_the_clone_stops_the_preview(prod):
    cfg = CONFIG.replace("disk: 1G", "disk: 20M")
    branch(prod.repo, "pr-disk", cfg)
    prod.cli("env", "create", "pr-disk", timeout=300)
    b = budget(prod, "pr-disk")
    assert b["disk"]["limit"] == 20 << 20 and b["disk"]["used"] < 1 << 20, b
    prod.cli("env", "exec", "pr-disk", "--", "sh", "-c",
             "head -c 30000000 /dev/urandom > /app/data/blob && sync", check=False, timeout=120)
    i = wait_for("the preview to stop", lambda: (lambda i: i if i["state"] == "stopped" else None)(
        info(prod, "pr-disk")), timeout=60)
    assert i["error"].startswith("budget exhausted: disk "), i
    assert budget(prod, "pr-disk")["disk"]["used"] >= 20 << 20
    prod.cli("env", "destroy", "pr-disk", timeout=120)


def test_token_budget_narrows_and_wall_time_expires(prod):
    # A token asking for more CPU than production allows gets production's; its shorter wall
    # time wins.
    tok = mint(prod, "--agent", "bot-wall", "--env", "pr-wall*", "--verbs",
               "env:read,env:create,env:exec,env:write", "--ttl", "1h",
               "--budget-cpu-seconds", "1h", "--budget-wall-time", "6s")
    assert tok["budget"] == {"cpu_seconds": 3600, "wall_time": 6}
    listed = json.loads(prod.cli("token", "list", "--json").stdout)["tokens"]
    assert [t["budget"] for t in listed if t["id"] == tok["id"]] == [{"cpu_seconds": 3600,
                                                                       "wall_time": 6}]
    branch(prod.repo, "pr-wall")
    prod.cli("env", "create", "pr-wall", token=tok["token"], timeout=300)
    b = budget(prod, "pr-wall", token=tok["token"])
    assert b["cpu_seconds"]["limit"] == 3, "a token's budget never widens production's"
    assert b["wall_time"]["limit"] == 6
    assert tok["id"] in b["source"] and "wall_time" in b["source"] and "cpu_seconds" not in \
        b["source"], b["source"]
    # Like every read, a budget outside the token's scope does not exist for it.
    p = prod.cli("env", "budget", "main", token=tok["token"], check=False)
    assert p.returncode != 0 and "environment 'main' not found" in p.stderr, p.stderr

    i = wait_for("wall time to run out", lambda: (lambda i: i if i["state"] == "stopped" else None)(
        info(prod, "pr-wall")), timeout=60)
    assert i["error"].startswith("budget exhausted: wall_time "), i
    actions = [r["action"] for r in audit(prod, "pr-wall")]
    assert actions == ["environment.budget_warning", "environment.budget_exhausted"], actions
    p = prod.cli("env", "start", "pr-wall", token=tok["token"], check=False, timeout=120)
    assert p.returncode != 0 and "used up its budget (wall_time" in p.stderr, p.stderr
    prod.cli("env", "destroy", "pr-wall", timeout=120)


def test_token_budget_cannot_widen_its_creator(prod):
    admin = mint(prod, "--human", "lead", "--env", "pr-*", "--verbs",
                 "env:read,env:create,token:admin", "--ttl", "1h", "--budget-wall-time", "1h",
                 "--budget-memory", "64M")
    p = mint(prod, "--agent", "wider", "--env", "pr-x", "--verbs", "env:read", "--ttl", "10m",
             "--budget-wall-time", "2h", token=admin["token"], check=False)
    assert p.returncode != 0 and "budget.wall_time" in p.stderr, p.stderr
    # Within it, and inheriting what it leaves out.
    child = mint(prod, "--agent", "narrower", "--env", "pr-x", "--verbs", "env:read", "--ttl",
                 "10m", "--budget-wall-time", "30m", token=admin["token"])
    assert child["budget"] == {"wall_time": 1800, "memory": 64 << 20}
    for bad in (["--budget-cpu-seconds", "0"], ["--budget-memory", "lots"]):
        p = mint(prod, "--agent", "bad", "--env", "pr-x", "--verbs", "env:read", "--ttl", "10m",
                 *bad, check=False)
        assert p.returncode != 0 and "--budget-" in p.stderr


def test_production_has_no_budget(prod):
    p = prod.cli("env", "budget", "main", check=False)
    assert p.returncode != 0 and "has no budget" in p.stderr
    assert "budget" not in info(prod, "main")
    p = prod.cli("env", "budget", "nosuch", check=False)
    assert p.returncode != 0 and "not found" in p.stderr


def test_use_and_limits_survive_a_daemon_restart(prod):
    tok = mint(prod, "--agent", "bot-restart", "--env", "pr-restart", "--verbs",
               "env:read,env:create,env:exec", "--ttl", "1h", "--budget-memory", "200M")
    branch(prod.repo, "pr-restart")
    prod.cli("env", "create", "pr-restart", token=tok["token"], timeout=300)
    # About half of the CPU budget, measured by the process itself.
    spin = ("import time\n"
            "while time.process_time() < {}: pass\n")
    prod.cli("env", "exec", "pr-restart", "--", "python3", "-c", spin.format(1.5), timeout=120)
    before = wait_for("the use to be recorded", lambda: (lambda b: b if b["cpu_seconds"]["used"]
                                                         >= 1.5 else None)(budget(prod, "pr-restart")))
    assert before["state"] in ("ok", "warning"), before

    prod.stop()
    assert_clean_log(prod)
    prod.start()
    i = wait_for("the preview to run again", lambda: (lambda i: i if i["state"] == "ready" else None)(
        info(prod, "pr-restart")), timeout=180)
    after = i["budget"]
    # The limits it was created with (the token's memory), and what it used before, are kept.
    assert after["memory"]["limit"] == 200 << 20 and after["cpu_seconds"]["limit"] == 3
    assert after["cpu_seconds"]["used"] >= before["cpu_seconds"]["used"]
    assert after["source"] == before["source"]

    # The rest of the budget is what is left: another 1.5 s uses it up.
    prod.cli("env", "exec", "pr-restart", "--", "python3", "-c", spin.format(1.6), check=False,
             timeout=120)
    i = wait_for("the preview to stop", lambda: (lambda i: i if i["state"] == "stopped" else None)(
        info(prod, "pr-restart")))
    assert i["error"].startswith("budget exhausted: cpu_seconds "), i
    prod.cli("env", "destroy", "pr-restart", timeout=120)
