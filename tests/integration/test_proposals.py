"""The proposal workflow end to end on examples/todo: an agent proposes, branchbox validates on a
clone of production with production's validate steps, a human approves and merges, production
redeploys with its data. One daemon and production for the module; tests run in file order."""
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, Daemon, require_debug_hooks

EXAMPLE = os.path.join(ROOT, "examples", "todo")
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
BUG = 'ILIKE %s ORDER BY t.id", (pattern))'
FIX = 'ILIKE %s ORDER BY t.id", (pattern,))'


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, env=GIT_ENV, capture_output=True,
                          text=True).stdout.strip()


def branch_with(repo, branch, edits, base="main"):
    """Create branch from base with files changed: edits maps a path to a function text -> text."""
    wt = tempfile.mkdtemp(prefix="bbx-wt-")
    try:
        git(repo, "worktree", "add", "-q", "-b", branch, wt, base)
        for path, edit in edits.items():
            full = os.path.join(wt, path)
            with open(full) as f:
                text = f.read()
            new = edit(text)
            assert new != text, f"edit of {path} changed nothing"
            with open(full, "w") as f:
                f.write(new)
        git(wt, "commit", "-q", "-am", f"change on {branch}")
        return git(wt, "rev-parse", "HEAD")
    finally:
        git(repo, "worktree", "remove", "--force", wt)
        shutil.rmtree(wt, ignore_errors=True)


def api(d, method, path, body=None, token=None, timeout=600):
    """REST over TCP with a bearer token; returns (status, parsed JSON)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(d.url + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def app_get(d, env, path, token):
    """A GET through the preview proxy: (status, body text)."""
    req = urllib.request.Request(f"{d.url}/preview/{env}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_validated(d, pid, token, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        status, p = api(d, "GET", f"/v1/proposals/{pid}", token=token)
        assert status == 200, p
        if p["status"] not in ("submitted", "cloning", "validating"):
            return p
        assert time.monotonic() < deadline, f"proposal {pid} still {p['status']}: {p['step']}"
        time.sleep(0.3)


def wait_env_ready(d, name, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        info = json.loads(d.cli("env", "info", name, "--json").stdout)
        if info["state"] != "starting" or time.monotonic() > deadline:
            return info
        time.sleep(0.3)


def token(d, *args):
    return d.cli("token", "create", *args).stdout.strip().splitlines()[-1]


def psql(d, sql):
    code = ("import os,psycopg2,sys;c=psycopg2.connect(os.environ['DATABASE_URL']);"
            "cur=c.cursor();cur.execute(sys.argv[1]);print(cur.fetchall()[0][0])")
    return d.cli("env", "exec", "main", "--", "python3", "-c", code, sql, timeout=120).stdout.strip()


class Prod:
    def __init__(self, d, repo):
        self.d, self.repo = d, repo
        self.agent = token(d, "--agent", "fixer", "--env", "fix-*", "--verbs",
                           "proposal:submit,env:read", "--ttl", "2h")
        self.human = token(d, "--human", "alice", "--env", "*", "--verbs",
                           "env:read,proposal:review,proposal:merge")

    def submit(self, tok=None, **body):
        return api(self.d, "POST", "/v1/proposals", body, token=tok or self.agent)


@pytest.fixture(scope="module")
def prod():
    tmp = tempfile.mkdtemp(prefix="bbx-prop-")
    repo = os.path.join(tmp, "repo")
    subprocess.run([os.path.join(EXAMPLE, "make-repo.sh"), repo], check=True, capture_output=True)
    d = Daemon(tmp, repo).start()
    try:
        d.cli("deploy", timeout=600)
        d.cli("env", "exec", "main", "--", "python3", "seed.py", timeout=120)
        yield Prod(d, repo)
    finally:
        d.stop()
        try:
            d.down()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def test_agent_proposes_fix_human_merges(prod):
    d = prod.d
    # The seeded bug: production's search fails.
    assert app_get(d, "main", "/api/todos?q=report", prod.human)[0] == 500
    todos_before = psql(d, "SELECT count(*) FROM todos")
    users_before = psql(d, "SELECT string_agg(email, ',' ORDER BY id) FROM users")
    head = branch_with(prod.repo, "fix-search", {"app.py": lambda t: t.replace(BUG, FIX)})
    base = git(prod.repo, "rev-parse", "main")

    p = d.cli("propose", "--branch", "fix-search", "--title", "Fix the search", "--json",
              token=prod.agent, via_http=True)
    sub = json.loads(p.stdout)
    assert sub["status"] == "submitted" and sub["head"] == head and sub["base"] == base
    pid = sub["id"]

    got = wait_validated(d, pid, prod.agent)
    assert got["status"] == "validated", json.dumps(got, indent=1)
    ev = got["evidence"]
    names = [s["name"] for s in ev["steps"]]
    assert names == ["unit", "health", "search", "schema"]
    for s in ev["steps"]:
        assert s["passed"] and s["exit_status"] == 0, s
        assert len(s["output_sha256"]) == 64 and "duration_ms" in s
    search = ev["steps"][names.index("search")]
    assert search["http_status"] == 200 and '"todos"' in search["output_tail"]
    assert ev["branch_steps"] == []
    assert ev["code_diff"]["files_changed"] == 1
    assert ev["code_diff"]["files"][0]["path"] == "app.py"
    assert ev["config_diff"] == []
    assert ev["digest"] == got["evidence_digest"] and len(ev["digest"]) == 64
    assert ev["resources"]["memory_peak_bytes"] > 0
    # The preview ran the head: its search works, production's still does not.
    assert app_get(d, got["preview"], "/api/todos?q=report", prod.human)[0] == 200

    # The agent can never approve, reject or merge, even its own proposal.
    for action, body in (("approve", {}), ("reject", {"reason": "no"}), ("merge", {})):
        status, err = api(d, "POST", f"/v1/proposals/{pid}/{action}", body, token=prod.agent)
        assert status == 403, (action, status, err)
    p = d.cli("proposal", "approve", pid, token=prod.agent, check=False)
    assert p.returncode != 0 and "may not proposal:review" in p.stderr

    # The human: show, diff, approve, merge.
    show = d.cli("proposal", "show", pid, token=prod.human).stdout
    assert "PASS search" in show and ev["digest"] in show
    diff = d.cli("proposal", "diff", pid, token=prod.human).stdout
    assert "(pattern,)" in diff
    status, appr = api(d, "POST", f"/v1/proposals/{pid}/approve", {}, token=prod.human)
    assert status == 200 and appr["status"] == "approved", appr
    assert appr["review"]["head"] == head and appr["review"]["base"] == base
    assert appr["review"]["evidence_digest"] == ev["digest"] and appr["review"]["by"] == "alice"
    status, merged = api(d, "POST", f"/v1/proposals/{pid}/merge", {}, token=prod.human)
    assert status == 200 and merged["status"] == "merged", merged
    assert merged["merge"]["kind"] == "fast-forward" and merged["merge"]["commit"] == head
    assert git(prod.repo, "rev-parse", "main") == head

    # Production serves the fix, with its own data intact.
    assert app_get(d, "main", "/api/todos?q=report", prod.human)[0] == 200
    assert psql(d, "SELECT count(*) FROM todos") == todos_before
    assert psql(d, "SELECT string_agg(email, ',' ORDER BY id) FROM users") == users_before
    assert "@example.invalid" not in users_before
    info = json.loads(d.cli("env", "info", "main", "--json").stdout)
    assert info["commit"] == head
    # The preview is gone; the evidence stays.
    assert got["preview"] not in d.cli("env", "list").stdout
    status, after = api(d, "GET", f"/v1/proposals/{pid}", token=prod.human)
    assert after["evidence"]["digest"] == ev["digest"]
    # Every transition is in the audit log with the commits and the evidence digest.
    audit = d.cli("audit", "log", "--limit", "1000").stdout
    trans = [l for l in audit.splitlines() if f"proposal:{pid}" in l and "proposal.transition" in l]
    assert [l.split()[7] for l in trans] == ["submitted", "validated", "approved", "merged"], trans
    assert all(f"head={head}" in l for l in trans)
    assert all(f"evidence={ev['digest']}" in l for l in trans[1:])


def readme_change(line):
    return {"README.md": lambda t: t + f"\n{line}\n"}


def validated(prod, branch, edits, **extra):
    """Push branch with edits, propose it as the agent, wait; returns the proposal."""
    branch_with(prod.repo, branch, edits)
    status, sub = prod.submit(branch=branch, **extra)
    assert status == 201, sub
    return wait_validated(prod.d, sub["id"], prod.agent)


def test_migration_that_breaks_the_app_fails_with_evidence(prod):
    # A migration that loses production's data: caught on the clone, before any merge.
    migration = ('    (3, "todos index", "CREATE INDEX todos_created_at ON todos (created_at)"),\n'
                 '    (4, "archive", "DELETE FROM todos WHERE NOT done"),\n')
    got = validated(prod, "fix-rename", {"migrate.py": lambda t: t.replace(
        '    (3, "todos index", "CREATE INDEX todos_created_at ON todos (created_at)"),\n', migration)})
    assert got["status"] == "failed", json.dumps(got, indent=1)
    steps = {s["name"]: s for s in got["evidence"]["steps"]}
    assert not steps["search"]["passed"]
    assert steps["search"]["http_status"] == 200
    assert "quarterly report" in steps["search"]["reason"]
    assert steps["search"]["output_tail"].startswith('{"todos": []}')
    assert "search" in got["error"]
    assert steps["schema"]["passed"]  # the migration ran, against the clone's data
    assert got["evidence"]["digest"] == got["evidence_digest"]
    # Torn down; production untouched.
    assert got["preview"] not in prod.d.cli("env", "list").stdout
    assert psql(prod.d, "SELECT count(*) FROM todos WHERE NOT done") != "0"
    # Failed is final: no approval.
    status, err = api(prod.d, "POST", f"/v1/proposals/{got['id']}/approve", {}, token=prod.human)
    assert status == 409 and "only a validated proposal" in err["error"]["message"]


def test_patch_proposal_and_reject(prod, tmp_path):
    base = git(prod.repo, "rev-parse", "main")
    patch = tmp_path / "p.diff"
    # A plain unified diff: the fix-rename migration, made harmless.
    text = git(prod.repo, "diff", "main", "fix-rename", "--", "migrate.py") + "\n"
    patch.write_text(text.replace("DELETE FROM todos WHERE NOT done",
                                  "ALTER TABLE todos ADD COLUMN note text"))
    p = prod.d.cli("propose", "--patch", str(patch), "--title", "Add a note column", "--json",
                   token=prod.agent)
    sub = json.loads(p.stdout)
    assert sub["branch"] == f"proposal/{sub['id']}"
    assert git(prod.repo, "rev-parse", f"{sub['head']}^") == base
    assert "branchbox.invalid" in git(prod.repo, "log", "-1", "--format=%an <%ae>", sub["head"])
    got = wait_validated(prod.d, sub["id"], prod.agent)
    assert got["status"] == "validated", json.dumps(got, indent=1)
    assert got["evidence"]["code_diff"]["files"][0]["path"] == "migrate.py"
    p = prod.d.cli("proposal", "reject", sub["id"], token=prod.human, check=False)
    assert p.returncode == 2 and "--reason" in p.stderr
    p = prod.d.cli("proposal", "reject", sub["id"], "--reason", "not now", "--json",
                   token=prod.human)
    rej = json.loads(p.stdout)
    assert rej["status"] == "rejected" and rej["review"]["reason"] == "not now"
    assert got["preview"] not in prod.d.cli("env", "list").stdout
    status, again = api(prod.d, "GET", f"/v1/proposals/{sub['id']}", token=prod.agent)
    assert again["evidence"]["digest"] == got["evidence_digest"]
    assert git(prod.repo, "rev-parse", "main") == base


def test_submit_refusals(prod):
    status, err = prod.submit(branch="elsewhere")
    assert status == 404 and "not found" in err["error"]["message"]
    git(prod.repo, "branch", "-f", "outside-scope", "main")
    status, err = prod.submit(branch="outside-scope")
    assert status == 404, err
    status, err = prod.submit(branch="main")
    assert status == 403 and "production branch" in err["error"]["message"]
    status, err = prod.submit(branch="fix-x", patch="x")
    assert status == 400 and "exactly one" in err["error"]["message"]
    status, err = prod.submit()
    assert status == 400
    # Without proposal:submit.
    reader = token(prod.d, "--agent", "reader", "--env", "fix-*", "--verbs", "env:read",
                   "--ttl", "1h")
    status, err = prod.submit(tok=reader, branch="fix-search")
    assert status == 403
    status, err = api(prod.d, "GET", "/v1/proposals", token=reader)
    assert status == 403 and "read proposals" in err["error"]["message"]
    # An agent token can never be minted with review or merge.
    p = prod.d.cli("token", "create", "--agent", "x", "--env", "fix-*", "--verbs",
                   "proposal:submit,proposal:merge", "--ttl", "1h", check=False)
    assert p.returncode != 0 and "agent tokens can never hold" in p.stderr
    # Another agent does not see the first agent's proposals.
    other = token(prod.d, "--agent", "other", "--env", "fix-*", "--verbs", "proposal:submit",
                  "--ttl", "1h")
    status, mine = api(prod.d, "GET", "/v1/proposals", token=prod.agent)
    status, theirs = api(prod.d, "GET", "/v1/proposals", token=other)
    assert mine["proposals"] and theirs["proposals"] == []
    status, err = api(prod.d, "GET", f"/v1/proposals/{mine['proposals'][0]['id']}", token=other)
    assert status == 404


def test_push_after_approval_refuses_merge(prod):
    got = validated(prod, "fix-push", readme_change("push after approval"))
    assert got["status"] == "validated"
    status, _ = api(prod.d, "POST", f"/v1/proposals/{got['id']}/approve", {}, token=prod.human)
    assert status == 200
    base = git(prod.repo, "rev-parse", "main")
    branch_with(prod.repo, "fix-push2", readme_change("more"), base="fix-push")
    git(prod.repo, "branch", "-f", "fix-push", "fix-push2")
    status, err = api(prod.d, "POST", f"/v1/proposals/{got['id']}/merge", {}, token=prod.human)
    assert status == 409 and "moved after validation" in err["error"]["message"], err
    assert git(prod.repo, "rev-parse", "main") == base
    status, p = api(prod.d, "GET", f"/v1/proposals/{got['id']}", token=prod.human)
    assert p["status"] == "stale"
    assert got["preview"] not in prod.d.cli("env", "list").stdout


def test_production_moved_after_approval_refuses_merge(prod):
    got = validated(prod, "fix-moved", readme_change("production moves"))
    assert got["status"] == "validated"
    status, _ = api(prod.d, "POST", f"/v1/proposals/{got['id']}/approve", {}, token=prod.human)
    assert status == 200
    # Someone else changes production meanwhile.
    moved = branch_with(prod.repo, "hotfix", readme_change("hotfix"))
    git(prod.repo, "update-ref", "refs/heads/main", moved)
    status, err = api(prod.d, "POST", f"/v1/proposals/{got['id']}/merge", {}, token=prod.human)
    assert status == 409 and "moved past the proposal's base" in err["error"]["message"], err
    assert git(prod.repo, "rev-parse", "main") == moved
    status, p = api(prod.d, "GET", f"/v1/proposals/{got['id']}", token=prod.human)
    assert p["status"] == "stale"
    prod.d.cli("deploy", timeout=600)


def test_idempotent_retries(prod):
    branch_with(prod.repo, "fix-idem", readme_change("idempotent"))
    body = {"branch": "fix-idem", "idempotency_key": "k-1"}
    status, first = prod.submit(**body)
    status2, second = prod.submit(**body)
    assert status == 201 and status2 == 201
    assert second["id"] == first["id"] and second.get("replayed")
    status, err = prod.submit(branch="fix-search", idempotency_key="k-1")
    assert status == 409 and "different request" in err["error"]["message"]
    pid = first["id"]
    got = wait_validated(prod.d, pid, prod.agent)
    assert got["status"] == "validated"
    for _ in range(2):
        status, a = api(prod.d, "POST", f"/v1/proposals/{pid}/approve",
                        {"idempotency_key": "a-1"}, token=prod.human)
        assert status == 200 and a["status"] == "approved", a
    results = []
    for _ in range(2):
        status, m = api(prod.d, "POST", f"/v1/proposals/{pid}/merge",
                        {"idempotency_key": "m-1"}, token=prod.human)
        assert status == 200, m
        results.append(m)
    assert results[0]["status"] == "merged" and results[1].get("replayed")
    assert results[1]["merge"]["commit"] == results[0]["merge"]["commit"] == got["head"]
    # One merge happened: one "merged" transition.
    audit = prod.d.cli("audit", "log", "--limit", "1000").stdout
    assert len([l for l in audit.splitlines()
                if f"proposal:{pid}" in l and " merged " in l]) == 1
    # Without a key a second merge is refused: it is merged already.
    status, err = api(prod.d, "POST", f"/v1/proposals/{pid}/merge", {}, token=prod.human)
    assert status == 409


def test_conflict_with_production_is_refused_at_submit(prod):
    # Forked before production's last change, touching the same lines.
    branch_with(prod.repo, "fix-conflict", readme_change("a different last line"), base="main~1")
    status, err = prod.submit(branch="fix-conflict")
    assert status == 409 and "conflicts with production" in err["error"]["message"], err
    assert "README.md" in err["error"]["message"]


def test_merge_commit_when_not_fast_forward(prod):
    """A branch forked before production's last change: what is validated, and what production
    gets, is the merge of its head into production's, authored by branchbox naming the
    proposal and its approver."""
    base = git(prod.repo, "rev-parse", "main")
    head = branch_with(prod.repo, "fix-old", {"settings.py": lambda t: t + "\n# reviewed\n"},
                       base="main~1")
    status, sub = prod.submit(branch="fix-old")
    assert status == 201, sub
    got = wait_validated(prod.d, sub["id"], prod.agent)
    assert got["status"] == "validated", json.dumps(got, indent=1)
    validated_commit = got["evidence"]["validated_commit"]
    assert validated_commit not in (head, base)
    assert git(prod.repo, "rev-parse", f"{validated_commit}^1") == base
    assert git(prod.repo, "rev-parse", f"{validated_commit}^2") == head
    # The diff a reviewer sees is what production would get: settings.py only.
    assert [f["path"] for f in got["evidence"]["code_diff"]["files"]] == ["settings.py"]
    status, _ = api(prod.d, "POST", f"/v1/proposals/{sub['id']}/approve", {}, token=prod.human)
    assert status == 200
    status, m = api(prod.d, "POST", f"/v1/proposals/{sub['id']}/merge", {}, token=prod.human)
    assert status == 200 and m["merge"]["kind"] == "merge-commit", m
    main = git(prod.repo, "rev-parse", "main")
    assert main == m["merge"]["commit"]
    assert git(prod.repo, "log", "-1", "--format=%P", main) == f"{base} {head}"
    msg = git(prod.repo, "log", "-1", "--format=%an%n%B", main)
    assert msg.startswith("branchbox\n") and f"Proposal: {sub['id']}" in msg
    assert "Approved-by: alice" in msg and got["evidence_digest"] in msg
    # The same tree as validated.
    assert git(prod.repo, "diff", "--stat", validated_commit, main) == ""
    assert wait_env_ready(prod.d, "main")["commit"] == main


def restart_with_stop_at(prod, step):
    require_debug_hooks()
    prod.d.stop()
    os.environ["BRANCHBOX_DEBUG_STOP_AT"] = step
    try:
        prod.d.start()
    finally:
        del os.environ["BRANCHBOX_DEBUG_STOP_AT"]
    wait_env_ready(prod.d, "main")


def died(prod):
    prod.d.proc.wait(timeout=300)
    assert prod.d.proc.returncode == -9
    prod.d.stop()
    prod.d.start()
    wait_env_ready(prod.d, "main")


def pending_ops(prod):
    db = sqlite3.connect(os.path.join(prod.d.state, "state.db"))
    try:
        return db.execute("SELECT kind FROM operations WHERE state = 'pending'").fetchall()
    finally:
        db.close()


def test_kill_during_validation(prod):
    branch_with(prod.repo, "fix-crash-v", readme_change("crash during validation"))
    restart_with_stop_at(prod, "proposal-validate:steps")
    status, sub = prod.submit(branch="fix-crash-v")
    assert status == 201
    died(prod)
    got = wait_validated(prod.d, sub["id"], prod.agent)
    assert got["status"] == "validated", json.dumps(got, indent=1)
    assert got["evidence"]["attempt"] == 2
    assert pending_ops(prod) == []
    assert json.loads(prod.d.cli("env", "info", got["preview"], "--json").stdout)["state"] == "ready"
    prod.d.cli("proposal", "reject", sub["id"], "--reason", "done", token=prod.human)


@pytest.mark.parametrize("step", ["cas", "deploy"])
def test_kill_during_merge(prod, step):
    got = validated(prod, f"fix-crash-{step}", readme_change(f"crash during merge at {step}"))
    assert got["status"] == "validated"
    status, _ = api(prod.d, "POST", f"/v1/proposals/{got['id']}/approve", {}, token=prod.human)
    assert status == 200
    base = git(prod.repo, "rev-parse", "main")
    restart_with_stop_at(prod, f"merge:{step}")
    try:
        api(prod.d, "POST", f"/v1/proposals/{got['id']}/merge", {}, token=prod.human, timeout=300)
    except Exception:
        pass  # the daemon died under the request
    died(prod)
    deadline = time.monotonic() + 300
    while True:
        status, p = api(prod.d, "GET", f"/v1/proposals/{got['id']}", token=prod.human)
        if p["status"] in ("merged", "approved", "failed") and p["step"] != "merging":
            break
        assert time.monotonic() < deadline, p
        time.sleep(0.3)
    main = git(prod.repo, "rev-parse", "main")
    assert main in (base, got["head"])
    if step == "cas":
        # Never swapped: as before the merge, which can be asked for again.
        assert p["status"] == "approved" and main == base
        status, m = api(prod.d, "POST", f"/v1/proposals/{got['id']}/merge", {}, token=prod.human)
        assert status == 200 and m["status"] == "merged", m
    else:
        # Swapped: the restart finished the redeploy.
        assert p["status"] == "merged" and main == got["head"], p
    assert git(prod.repo, "rev-parse", "main") == got["head"]
    assert wait_env_ready(prod.d, "main")["commit"] == got["head"]
    assert app_get(prod.d, "main", "/api/todos?q=report", prod.human)[0] == 200
    assert pending_ops(prod) == []
    assert got["preview"] not in prod.d.cli("env", "list").stdout
