# SPDX-License-Identifier: MIT
"""A proposal's branch is attacker input: it cannot decide whether it passes validation.

DESIGN.md 2 and 2a: the validate steps that count are production's, from the config of the
commit production runs; steps the branch's own config adds run too, reported apart, and never
turn a failed production step into a pass. Production here still has the example's seeded
search bug, so production's 'search' step fails for every branch that does not fix it.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
from test_proposals import (BUG, FIX, api, branch_with, prod, wait_validated)  # noqa: E402,F401

CONFIG = ".branchbox/config.yaml"


def without_validate(text):
    head, _, rest = text.partition("\nvalidate:\n")
    _, _, tail = rest.partition("\negress:")
    return head + "\negress:" + tail


def own_steps(text):
    """The branch's validate: always-passing steps, one named like production's failing one."""
    return without_validate(text).replace("\negress:", (
        "\nvalidate:\n"
        "  - name: search\n    command: \"true\"\n"
        "  - name: everything-is-fine\n    command: \"echo all good\"\n"
        "\negress:"), 1)


def propose(prod, branch):
    status, sub = prod.submit(branch=branch)
    assert status == 201, sub
    return wait_validated(prod.d, sub["id"], prod.agent)


def production_step(got, name):
    return next(s for s in got["evidence"]["steps"] if s["name"] == name)


def test_branch_deleting_validate_steps_still_fails(prod):
    got = propose(prod, branch_with(prod.repo, "fix-novalidate", {CONFIG: without_validate})
                  and "fix-novalidate")
    assert got["status"] == "failed", json.dumps(got, indent=1)
    ev = got["evidence"]
    assert [s["name"] for s in ev["steps"]] == ["unit", "health", "search", "schema"]
    assert all(s["source"] == "production" for s in ev["steps"])
    search = production_step(got, "search")
    assert not search["passed"] and search["http_status"] == 500
    assert ev["branch_steps"] == []
    # The blast radius names the deletion as a widening of production's policy.
    removed = [c for c in ev["config_diff"] if c["path"].startswith("validate")]
    assert removed and all(c["change"] == "removed" and c["governed"] and c["widens"]
                           for c in removed), removed
    assert got["preview"] not in prod.d.cli("env", "list").stdout


def test_branch_adding_passing_steps_still_fails(prod):
    got = propose(prod, branch_with(prod.repo, "fix-ownsteps", {CONFIG: own_steps})
                  and "fix-ownsteps")
    assert got["status"] == "failed", json.dumps(got, indent=1)
    ev = got["evidence"]
    assert not production_step(got, "search")["passed"]
    # The branch's steps ran, apart, and passed: they changed nothing.
    assert [(s["name"], s["source"], s["passed"]) for s in ev["branch_steps"]] == [
        ("search", "branch", True), ("everything-is-fine", "branch", True)]
    assert "production step 'search' failed" in got["error"]
    added = [c for c in ev["config_diff"] if c["path"].startswith("validate") and
             c["change"] == "added"]
    assert added and not any(c["widens"] for c in added)


def test_fix_with_own_failing_step_fails(prod):
    """The branch's own steps can make validation stricter, never laxer."""
    def edits(text):
        return text.replace("\nvalidate:\n", "\nvalidate:\n  - name: branch-check\n"
                                             "    command: \"exit 3\"\n", 1)
    branch_with(prod.repo, "fix-strict", {CONFIG: edits, "app.py": lambda t: t.replace(BUG, FIX)})
    got = propose(prod, "fix-strict")
    assert got["status"] == "failed"
    assert all(s["passed"] for s in got["evidence"]["steps"])
    [own] = got["evidence"]["branch_steps"]
    assert own["name"] == "branch-check" and own["exit_status"] == 3 and not own["passed"]


def test_agent_cannot_review_or_merge_its_own_proposal(prod):
    branch_with(prod.repo, "fix-own", {"app.py": lambda t: t.replace(BUG, FIX)})
    got = propose(prod, "fix-own")
    assert got["status"] == "validated", json.dumps(got, indent=1)
    pid = got["id"]
    for action, body in (("approve", {}), ("reject", {"reason": "x"}), ("merge", {})):
        status, err = api(prod.d, "POST", f"/v1/proposals/{pid}/{action}", body, token=prod.agent)
        assert status == 403, (action, err)
    # Approved by a human, the agent still cannot merge it.
    status, _ = api(prod.d, "POST", f"/v1/proposals/{pid}/approve", {}, token=prod.human)
    assert status == 200
    status, err = api(prod.d, "POST", f"/v1/proposals/{pid}/merge", {}, token=prod.agent)
    assert status == 403
    status, p = api(prod.d, "GET", f"/v1/proposals/{pid}", token=prod.agent)
    assert p["status"] == "approved"
    # A human token without proposal:merge cannot either.
    reviewer = prod.d.cli("token", "create", "--human", "rita", "--env", "*", "--verbs",
                          "proposal:review").stdout.strip().splitlines()[-1]
    status, err = api(prod.d, "POST", f"/v1/proposals/{pid}/merge", {}, token=reviewer)
    assert status == 403
    audit = prod.d.cli("audit", "log", "--limit", "1000").stdout
    denied = [l for l in audit.splitlines() if "proposal.merge" in l and " deny " in l]
    assert len(denied) >= 3


def test_branch_widening_policy_fails_naming_the_key(prod):
    """A branch asking for more than production's config allows never gets a preview: the
    proposal fails at the clone, and the evidence names the key."""
    def longer_ttl(text):
        return text.replace("    ttl: 24h\n", "    ttl: 30d\n", 1)
    branch_with(prod.repo, "fix-ttl", {CONFIG: longer_ttl, "app.py": lambda t: t.replace(BUG, FIX)})
    got = propose(prod, "fix-ttl")
    assert got["status"] == "failed", json.dumps(got, indent=1)
    assert "environments.preview.ttl" in got["evidence"]["clone_error"]
    assert "environments.preview.ttl" in got["error"]
    assert "steps" not in got["evidence"]
    assert got["preview"] not in prod.d.cli("env", "list").stdout
