"""Requests with side effects outside the database (exec, create, destroy, deploy, start, stop)
leave an intent record, committed before they act, and an outcome record after, under the same
request id; a daemon killed in between leaves the intent alone on record and a valid chain."""
import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import BIN
from echo_project import git_branch, start_echo_daemon, stop_echo_daemon


@pytest.fixture
def echo():
    d = start_echo_daemon()
    yield d
    stop_echo_daemon(d)


def records(d):
    return json.loads(d.cli("audit", "log", "--limit", "1000", "--json").stdout)["records"]


def by_request(recs, request_id):
    return [r for r in recs if r["request_id"] == request_id]


def last_pair(recs, action):
    """The newest request of action, as its records in order."""
    mine = [r for r in recs if r["action"] == action]
    assert mine, f"no {action} record"
    return by_request(recs, mine[-1]["request_id"])


def assert_intent_then_outcome(pair, action, resource, outcome):
    assert [r["outcome"] for r in pair] == ["intent", outcome], pair
    intent, done = pair
    assert intent["seq"] < done["seq"]
    for r in pair:
        assert r["action"] == action and r["resource"] == resource
        assert r["decision"] == "allow"
    # The intent names the very request that then ran.
    assert intent["request_digest"] == done["request_digest"] and intent["request_digest"]


def test_side_effects_record_intent_then_outcome(echo):
    recs = records(echo)
    assert_intent_then_outcome(last_pair(recs, "environment.deploy"), "environment.deploy",
                               "environment:main", "200")

    p = echo.cli("env", "exec", "main", "--", "sh", "-c", "echo ran")
    assert p.stdout.strip() == "ran"
    assert_intent_then_outcome(last_pair(records(echo), "environment.exec"), "environment.exec",
                               "environment:main", "200")

    git_branch(echo.repo, "pr-intent")
    echo.cli("env", "create", "pr-intent", timeout=300)
    assert_intent_then_outcome(last_pair(records(echo), "environment.create"),
                               "environment.create", "environment:pr-intent", "201")
    echo.cli("env", "stop", "pr-intent", timeout=300)
    assert_intent_then_outcome(last_pair(records(echo), "environment.stop"), "environment.stop",
                               "environment:pr-intent", "200")
    echo.cli("env", "start", "pr-intent", timeout=300)
    assert_intent_then_outcome(last_pair(records(echo), "environment.start"),
                               "environment.start", "environment:pr-intent", "200")
    echo.cli("env", "destroy", "pr-intent", timeout=300)
    assert_intent_then_outcome(last_pair(records(echo), "environment.destroy"),
                               "environment.destroy", "environment:pr-intent", "200")

    # A failure is an outcome like any other.
    p = echo.cli("env", "exec", "main", "--", "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3
    assert_intent_then_outcome(last_pair(records(echo), "environment.exec"), "environment.exec",
                               "environment:main", "200")

    # Reads stay one record each, written before the answer.
    echo.cli("env", "info", "main")
    assert [r["outcome"] for r in last_pair(records(echo), "environment.get")] == ["200"]
    # Denied before any handler: one record, no intent.
    p = echo.cli("env", "exec", "nosuch", "--", "true", check=False)
    assert p.returncode == 1
    pair = last_pair(records(echo), "environment.exec")
    assert [(r["decision"], r["outcome"]) for r in pair] == [("deny", "404")]

    assert "audit chain valid" in echo.cli("audit", "verify").stdout
    # Both show in the plain listing too.
    text = echo.cli("audit", "log", "--limit", "50").stdout
    assert " environment.exec environment:main allow intent" in text
    assert " environment.exec environment:main allow 200" in text


def test_no_intent_no_action(echo):
    """If the intent cannot be written, the request fails and nothing is done."""
    git_branch(echo.repo, "pr-blocked")
    db = sqlite3.connect(os.path.join(echo.state, "state.db"), timeout=30)
    db.execute("CREATE TRIGGER audit_blocked BEFORE INSERT ON audit "
               "WHEN NEW.outcome = 'intent' BEGIN SELECT RAISE(ABORT, 'blocked'); END")
    db.commit()
    try:
        p = echo.cli("env", "create", "pr-blocked", check=False, timeout=300)
        assert p.returncode != 0 and "audit log" in p.stderr, p.stderr
        assert db.execute("SELECT count(*) FROM environments WHERE name = 'pr-blocked'").fetchone()[0] == 0
        p = echo.cli("env", "exec", "main", "--", "sh", "-c", "echo should-not-run", check=False)
        assert p.returncode != 0 and "should-not-run" not in p.stdout
    finally:
        db.execute("DROP TRIGGER audit_blocked")
        db.commit()
        db.close()
    assert "pr-blocked" not in echo.cli("env", "list").stdout
    # Positive control: with the ledger writable again the same create goes through.
    echo.cli("env", "create", "pr-blocked", timeout=300)
    assert "pr-blocked" in echo.cli("env", "list").stdout
    echo.cli("env", "destroy", "pr-blocked", timeout=300)
    assert "audit chain valid" in echo.cli("audit", "verify").stdout


def env_cgroups(d, name):
    """The cgroup paths of environment name's processes (one per hierarchy), from its web app."""
    info = json.loads(d.cli("env", "info", name, "--json").stdout)
    pid = next(p["pid"] for p in info["processes"] if p["pid"])
    paths = set()
    for line in open(f"/proc/{pid}/cgroup"):
        path = line.rstrip("\n").split(":", 2)[2]
        if f"/env-{name}/" in path + "/":
            paths.add(path[:path.index(f"/env-{name}") + len(f"/env-{name}")])
    assert paths, f"no cgroup of env-{name} for pid {pid}"
    return paths


def running_in(paths, argv):
    """Whether a process with exactly argv runs in one of the cgroups paths (or below)."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{pid}/cmdline", "rb").read() != want:
                continue
            for line in open(f"/proc/{pid}/cgroup"):
                path = line.rstrip("\n").split(":", 2)[2]
                if any(path == p or path.startswith(p + "/") for p in paths):
                    return True
        except OSError:
            continue
    return False


def test_daemon_killed_mid_exec_leaves_the_intent(echo):
    # A normal exec first: intent then outcome.
    echo.cli("env", "exec", "main", "--", "true")
    first = last_pair(records(echo), "environment.exec")
    assert_intent_then_outcome(first, "environment.exec", "environment:main", "200")
    first_seq = first[-1]["seq"]

    env = dict(os.environ, BRANCHBOX_STATE=echo.state)
    env.pop("BRANCHBOX_URL", None)
    env.pop("BRANCHBOX_TOKEN", None)
    cgroups = env_cgroups(echo, "main")
    assert not running_in(cgroups, ["sleep", "30"])
    client = subprocess.Popen([BIN, "env", "exec", "main", "--", "sleep", "30"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until the intent is committed and the command runs inside production.
        db_path = os.path.join(echo.state, "state.db")
        deadline = time.monotonic() + 60
        intent = None
        while intent is None:
            assert time.monotonic() < deadline, "the exec never started"
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
            row = db.execute("SELECT request_id, seq FROM audit WHERE action = 'environment.exec' "
                             "AND outcome = 'intent' ORDER BY seq DESC LIMIT 1").fetchone()
            n = db.execute("SELECT count(*) FROM audit WHERE request_id = ?", (row[0],)).fetchone()[0]
            if row[1] <= first_seq:
                n = 0  # still the earlier exec's intent
            db.close()
            if n == 1 and running_in(cgroups, ["sleep", "30"]):
                intent = row
            else:
                time.sleep(0.1)
        echo.proc.send_signal(signal.SIGKILL)
        echo.proc.wait(timeout=30)
        assert echo.proc.returncode == -signal.SIGKILL
        assert client.wait(timeout=60) != 0  # the client saw its daemon go
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        echo.log.close()
        echo.log = None

    echo.start()
    recs = records(echo)
    mine = by_request(recs, intent[0])
    assert len(mine) == 1, mine  # the intent and nothing after it
    r = mine[0]
    assert r["seq"] == intent[1] and r["outcome"] == "intent" and r["decision"] == "allow"
    assert r["action"] == "environment.exec" and r["resource"] == "environment:main"
    assert r["principal"] == "root" and r["request_digest"]
    assert "audit chain valid" in echo.cli("audit", "verify").stdout
    # The restarted daemon goes on recording pairs (once production is up again: a restart
    # brings environments back in the background).
    deadline = time.monotonic() + 120
    while json.loads(echo.cli("env", "info", "main", "--json").stdout)["state"] != "ready":
        assert time.monotonic() < deadline, "production did not come back after the restart"
        time.sleep(0.2)
    echo.cli("env", "exec", "main", "--", "true")
    assert_intent_then_outcome(last_pair(records(echo), "environment.exec"), "environment.exec",
                               "environment:main", "200")
