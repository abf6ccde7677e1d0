# SPDX-License-Identifier: MIT
"""No environment can wedge the daemon: deadlines that hold, and nothing an agent runs holds
what destroy, stop, the reaper or shutdown need.

Each wedge is a command that misbehaves with its fds and children: it closes its output and
sleeps, forks a child that keeps the output pipe open and exits, or ignores SIGTERM. Run as
`env exec` (no deadline of its own: the default 600 s), as a build hook (the daemon's
--hook-timeout) and as a sanitize step (its `timeout`), each is killed with its whole tree
at its deadline, or as soon as its environment is destroyed or stopped, and the call that
ended it returns promptly. Times are printed with each case (recorded, not gated beyond the
bounds the daemon promises).
"""
import json
import os
import signal
import threading
import time

import pytest

from test_hostile_branch import (T_CREATE, T_SHORT, Previews, Project, bbx, exec_procs, make_branch,
                                 mint_agent, start_project, stop_project)

# Commands that never end by themselves. Each prints "up" once it runs.
WEDGES = {
    "close-output-and-sleep": "echo up; exec >&- 2>&- </dev/null; sleep 1000",
    "ignore-term": "trap '' TERM; echo up; while :; do sleep 1; done",
    "child-holds-output": "echo up; sh -c 'trap \"\" TERM HUP; exec sleep 1000' & exec >&- 2>&-; wait",
}
# Ends at once, leaving a child that holds the output pipe open and ignores TERM: the call
# ends with the command, and the child is killed with it.
FORK_AWAY = "echo up; (trap '' TERM HUP; exec sleep 1000) & exit 0"
HOOK_TIMEOUT = 4          # the daemon's --hook-timeout in this module
SANITIZE_TIMEOUT = 4      # production's sanitize step timeout
PROMPT = 2.0              # destroy/stop must end a running exec within this (issue: 2 s)


def wedge_case():
    """Production's sanitize step: runs the wedge a preview named pr-ws-WEDGE asks for (by
    its hostname, which is its name), nothing for any other preview."""
    arms = " ".join(f"pr-ws-{k}) {v} ;;" for k, v in WEDGES.items())
    return f"case $(uname -n) in {arms} *) true ;; esac"


def config(hooks=None, sanitize=None, ttl=None):
    lines = ["applications:", "  app:", '    type: "python:3.11"']
    if hooks:
        lines += ["    hooks:"] + [f"      {k}: {json.dumps(v)}" for k, v in hooks.items()]
    lines += ["environments:", "  preview:", "    profile: {cpu: 0.5, memory: 192M}",
              f"    ttl: {ttl or '2h'}"]
    if sanitize:
        lines += ["sanitize:", f"  - name: wedge", f"    command: {json.dumps(sanitize)}",
                  f"    timeout: {SANITIZE_TIMEOUT}s"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def proj():
    files = {".branchbox/config.yaml": config(sanitize=wedge_case()), "README": "hi\n"}
    tmp, d = start_project("bbx-wedge-", files, extra_args=["--hook-timeout", f"{HOOK_TIMEOUT}s"])
    try:
        p = bbx(d, "deploy", timeout=T_CREATE)
        assert p.ok, f"production deploy failed: {p}"
        yield Project(d, mint_agent(d))
    finally:
        stop_project(tmp, d)


def start_exec(proj, name, script):
    """Run script in name on a thread; returns (thread, box with the Answer and end time)."""
    box = {}

    def go():
        box["answer"] = proj.sh(name, script, timeout=120)
        box["ended"] = time.monotonic()
    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not exec_procs(proj, name):
        time.sleep(0.05)
    time.sleep(0.5)  # past the "up" and into the wedge
    return t, box


def gone(pids):
    return [p for p in pids if os.path.exists(f"/proc/{p}")]


@pytest.mark.parametrize("op", ["destroy", "stop"])
@pytest.mark.parametrize("variant", list(WEDGES))
def test_exec_wedge_ended_by(proj, variant, op):
    """A wedged exec never holds up destroy or stop: they kill it and return; the exec answers
    that it was cut short; nothing of it is left on the host."""
    name = make_branch(proj.repo, f"pr-w-{op}-{variant}"[:60])
    with Previews(proj) as pv:
        pv.add(name)
        assert proj.create(name).ok
        t, box = start_exec(proj, name, WEDGES[variant])
        running = exec_procs(proj, name)
        start = time.monotonic()
        a = proj.root("env", op, name, timeout=60)
        took = time.monotonic() - start
        t.join(timeout=60)
        ended = box.get("ended", float("inf")) - start
        print(f"{variant}: env {op} took {took:.2f} s, the exec ended {ended:.2f} s after it began")
        assert running, "control: the wedge never ran"
        assert not a.hung and a.ok, f"env {op} with a wedged exec: {a}"
        assert "answer" in box, "the exec call never returned"
        ex = box["answer"]
        assert not ex.ok and "while the command ran" in ex.text, f"the exec's answer: {ex}"
        assert ended <= PROMPT, f"the exec ended {ended:.2f} s after env {op} began (at most {PROMPT} s)"
        if op == "stop":
            assert took <= PROMPT + 1, f"env stop took {took:.2f} s"
        assert not gone(running) and not exec_procs(proj, name), "the exec's processes outlived it"


def test_exec_forking_away_returns_at_its_exit(proj):
    """An exec that forks a child holding its output and exits returns when it exits; the
    child does not survive it."""
    name = make_branch(proj.repo, "pr-w-fork-away")
    with Previews(proj) as pv:
        pv.add(name)
        assert proj.create(name).ok
        start = time.monotonic()
        a = proj.sh(name, FORK_AWAY, timeout=60)
        took = time.monotonic() - start
        print(f"an exec forking away returned after {took:.2f} s")
        assert not a.hung and a.ok and "up" in a.out, a
        assert took < 30, f"the exec took {took:.1f} s to return"
        assert not exec_procs(proj, name), "the forked child outlived the exec"


def test_build_hook_forking_away_leaves_nothing(proj):
    """A build hook that forks a child holding its output and exits: the create goes on, and
    the child is gone with the hook."""
    name = make_branch(proj.repo, "pr-wb-fork-away", config=config(hooks={"build": FORK_AWAY}))
    with Previews(proj) as pv:
        pv.add(name)
        a = proj.create(name)
        assert not a.hung and a.ok, a
        assert not exec_procs(proj, name), "the build hook's child outlived it"


@pytest.mark.parametrize("step", ["build-hook", "sanitize-step"])
@pytest.mark.parametrize("variant", list(WEDGES))
def test_step_wedge_killed_at_deadline(proj, variant, step):
    """A build hook (deadline: --hook-timeout) or sanitize step (its timeout) that wedges is
    killed with its tree at its deadline; the create fails saying so, and nothing of the
    preview is left (fail closed)."""
    if step == "build-hook":
        name = make_branch(proj.repo, f"pr-wb-{variant}"[:60], config=config(hooks={"build": WEDGES[variant]}))
        deadline, what = HOOK_TIMEOUT, "build"
    else:
        name = make_branch(proj.repo, f"pr-ws-{variant}")  # production's step wedges for pr-ws-*
        deadline, what = SANITIZE_TIMEOUT, "sanitize"
    with Previews(proj) as pv:
        pv.add(name)
        start = time.monotonic()
        a = proj.create(name)
        took = time.monotonic() - start
        print(f"{variant}: create with a wedged {step} failed after {took:.2f} s (deadline {deadline} s)")
        assert not a.hung and not a.ok, f"create with a wedged {step}: {a}"
        assert what in a.text and "timed out after" in a.text and "killed" in a.text, a
        assert took < deadline + 30, f"create took {took:.1f} s"
        assert name not in proj.names() and not exec_procs(proj, name)


def test_destroy_cancels_a_create_in_progress(proj):
    """Destroying a preview whose build hook is still running ends the hook at once instead of
    waiting for its deadline."""
    name = make_branch(proj.repo, "pr-wc-create", config=config(hooks={"build": WEDGES["ignore-term"]}))
    with Previews(proj) as pv:
        pv.add(name)
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("a", proj.create(name)))
        t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and name not in proj.names():
            time.sleep(0.05)
        time.sleep(0.5)
        start = time.monotonic()
        d = proj.root("env", "destroy", name, timeout=60)
        took = time.monotonic() - start
        t.join(timeout=60)
        print(f"destroy during create took {took:.2f} s (hook deadline {HOOK_TIMEOUT} s)")
        assert not d.hung and d.ok, d
        assert not box["a"].ok
        assert name not in proj.names() and not exec_procs(proj, name)


def test_ttl_expiry_on_time_next_to_wedges(proj):
    """A preview's TTL expiry is on time while another preview's exec is wedged and a third
    is stuck in its build hook."""
    wedged = make_branch(proj.repo, "pr-wt-wedged")
    creating = make_branch(proj.repo, "pr-wt-creating", config=config(hooks={"build": WEDGES["ignore-term"]}))
    short = make_branch(proj.repo, "pr-wt-short", config=config(ttl="3s"))
    with Previews(proj) as pv:
        for n in (wedged, creating, short):
            pv.add(n)
        assert proj.create(wedged).ok
        t, box = start_exec(proj, wedged, WEDGES["close-output-and-sleep"])
        ct = threading.Thread(target=lambda: proj.create(creating))
        ct.start()
        a = proj.create(short)
        assert a.ok, a
        expires = json.loads(a.out)["expires_at"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and short in proj.names():
            time.sleep(0.2)
        late = time.time() - expires
        print(f"the 3 s preview was gone {late:.1f} s after it expired (reaper interval 5 s)")
        assert short not in proj.names(), "the expired preview was not reaped within 60 s"
        proj.root("env", "destroy", wedged, timeout=60)
        t.join(timeout=60)
        ct.join(timeout=60)


def test_shutdown_with_a_wedged_exec():
    """SIGTERM ends the daemon promptly although an exec is wedged; the exec's processes go
    with it."""
    files = {".branchbox/config.yaml": config(), "README": "hi\n"}
    tmp, d = start_project("bbx-wedge-stop-", files)
    try:
        assert bbx(d, "deploy", timeout=T_CREATE).ok
        proj = Project(d, mint_agent(d))
        name = make_branch(proj.repo, "pr-w-shutdown")
        assert proj.create(name).ok
        t, box = start_exec(proj, name, WEDGES["ignore-term"])
        running = exec_procs(proj, name)
        start = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        try:
            rc = d.proc.wait(timeout=60)
        except Exception:
            rc = None
        took = time.monotonic() - start
        t.join(timeout=60)
        print(f"the daemon stopped {took:.2f} s after SIGTERM with a wedged exec")
        assert running, "control: the wedge never ran"
        assert rc == 0, f"the daemon did not stop cleanly within 60 s (rc {rc}):\n{d.read_log()[-3000:]}"
        assert took < 20, f"shutdown took {took:.1f} s"
        assert not gone(running), "the exec's processes outlived the daemon"
    finally:
        stop_project(tmp, d)
