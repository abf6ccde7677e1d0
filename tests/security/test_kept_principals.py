# SPDX-License-Identifier: MIT
"""A principal kept past the request that authenticated it (a subscription stream, an MCP
task) must die with its token. Every place in src/ that keeps one (principal_copy) is found
here, and each must ask token_principal_live() before acting for it, directly or through
OpCall.principal_kept (ops_run() asks). A new keeper that forgets fails this test; the
behaviour itself is tested in tests/unit/test-token.c (ops_run of a kept principal, for a
revoked, an expired and a removed token) and tests/mcp/test_mcp.py (both event streams)."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "src")
# Where principal_copy is defined, not used.
DEFINES = {os.path.join("src", "core", "principal.c")}
GUARDS = re.compile(r"token_principal_live\s*\(|\.principal_kept\s*=\s*true")


def keepers():
    for root, _, files in os.walk(SRC):
        for f in sorted(files):
            if not f.endswith(".c"):
                continue
            path = os.path.join(root, f)
            text = open(path, encoding="utf-8").read()
            if re.search(r"\bprincipal_copy\s*\(", text):
                yield os.path.relpath(path, ROOT), text


def test_every_kept_principal_is_checked_before_it_acts():
    found = {rel: bool(GUARDS.search(text)) for rel, text in keepers() if rel not in DEFINES}
    # The keepers known today: if one goes away this list is out of date, not the code wrong.
    assert {"src/mcp/mcp-subscribe.c", "src/mcp/mcp-tasks.c"} <= set(found), found
    unguarded = [rel for rel, ok in found.items() if not ok]
    assert not unguarded, f"these keep a principal and never ask token_principal_live(): " \
                          f"{unguarded}"


def test_no_principal_is_kept_by_hand():
    """A Principal copied by struct assignment (its scopes shared, no liveness check) is
    found too: only principal_copy() keeps one."""
    offenders = []
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".c"):
                continue
            path = os.path.join(root, f)
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                if re.search(r"->(owner|principal)\s*=\s*\*", line) or \
                        re.search(r"\b(owner|principal)\s*=\s*\*\s*(call->principal|p)\s*;",
                                  line):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders
