"""The CLI's command table: every row has a summary and a help that exits 0, option errors
name the option and the command and exit 2, and the global options work before or after the
verb."""
import json
import os
import re

import pytest

from conftest import run


def rows():
    p = run("help", "--list")
    paths = p.stdout.split("\n")[:-1]
    assert paths and all(paths), p.stdout
    return paths


ROWS = rows()


def test_table_holds_every_verb():
    # A positive control for the generated tests below: the table is not empty or cut short.
    for path in ("deploy", "env create", "env exec", "serve", "down", "status", "version",
                 "config check", "pool init", "volume snapshot", "sandbox run", "token create",
                 "audit verify", "help"):
        assert path in ROWS, path
    assert len(ROWS) == len(set(ROWS)), "a path is in the table twice"


def test_every_row_has_a_summary_in_the_verb_list():
    out = run("--help").stdout
    assert out == run("help").stdout
    for path in ROWS:
        m = re.search(r"^ +" + re.escape(path) + r" +(\S.*)$", out, re.M)
        assert m, f"'{path}' is not listed with a summary in branchbox --help"
    # Without a verb the same list goes to stderr, with the usage exit status.
    p = run(check=False)
    assert p.returncode == 2 and "env create" in p.stderr


@pytest.mark.parametrize("path", ROWS)
def test_every_row_has_help(path):
    words = path.split()
    p = run(*words, "--help")
    assert p.stdout.startswith(f"Usage: branchbox {path}"), p.stdout
    assert "\n\n" in p.stdout and p.stderr == ""
    # The same text three ways: VERB --help, VERB -h, help VERB.
    assert run(*words, "-h").stdout == p.stdout
    assert run("help", *words).stdout == p.stdout
    if words[-1] != "help":
        assert "-h, --help" in p.stdout or "COMMAND --help" in p.stdout


@pytest.mark.parametrize("path", ROWS)
def test_every_row_refuses_an_unknown_option(path):
    p = run(*path.split(), "--no-such-option", check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert f"branchbox {path}: unknown option '--no-such-option'" in p.stderr, p.stderr
    assert f"Try 'branchbox {path} --help'." in p.stderr


def test_usage_errors(tmpdir_path):
    p = run("frobnicate", check=False)
    assert p.returncode == 2 and "unknown verb 'frobnicate'" in p.stderr
    p = run("env", check=False)
    assert p.returncode == 2 and "missing command (create, list," in p.stderr
    p = run("env", "frob", check=False)
    assert p.returncode == 2 and "branchbox env: unknown command 'frob'" in p.stderr
    p = run("env", "create", check=False)
    assert p.returncode == 2 and "branchbox env create: missing argument: expected NAME" in p.stderr
    p = run("env", "info", "a", "b", check=False)
    assert p.returncode == 2 and "unexpected argument 'b'" in p.stderr
    p = run("env", "list", "--state", check=False)
    assert p.returncode == 2 and "option '--state' needs a value (DIR)" in p.stderr
    p = run("status", "--json=yes", check=False)
    assert p.returncode == 2 and "option '--json' takes no value" in p.stderr
    # --state and --json only where the row takes them.
    p = run("sandbox", "run", "--state", tmpdir_path, "--", "true", check=False)
    assert p.returncode == 2 and "branchbox sandbox run: unknown option '--state'" in p.stderr
    p = run("serve", "--json", check=False)
    assert p.returncode == 2 and "unknown option '--json'" in p.stderr
    p = run("help", "frob", check=False)
    assert p.returncode == 2 and "no such verb" in p.stderr


def test_global_options_before_and_after_the_verb(tmpdir_path):
    missing = os.path.join(tmpdir_path, "nothing")
    for args in (("--state", missing, "status"), ("status", "--state", missing),
                 ("status", f"--state={missing}"), ("token", "--state", missing, "list"),
                 ("--state", missing, "token", "list", "--json"),
                 ("env", "--json", "list", "--state", missing),
                 ("audit", "--state", missing, "pubkey")):
        p = run(*args, check=False)
        # Exit 3: the CLI went to the daemon at the state dir it was given.
        assert p.returncode == 3 and missing in p.stderr, (args, p.returncode, p.stderr)


def test_version_json():
    text = run("version").stdout
    assert text.startswith("branchbox ")
    assert json.loads(run("version", "--json").stdout)["version"] == text.split()[1]
    assert run("--version").stdout == text


def test_json_and_state_on_a_daemon(daemon):
    # BRANCHBOX_STATE is unset here: --state alone points at the daemon, in either place.
    for args in (("--json", "--state", daemon.state, "status"),
                 ("status", "--state", daemon.state, "--json")):
        p = run(*args)
        assert json.loads(p.stdout)["kind"] == "root", p.stdout
    key = run("audit", "pubkey", "--state", daemon.state).stdout.strip()
    p = run("audit", "--state", daemon.state, "pubkey", "--json")
    assert json.loads(p.stdout)["public_key"] == key
    p = run("audit", "verify", "--json", "--state", daemon.state)
    out = json.loads(p.stdout)
    assert out["valid"] is True and out["records"] >= 1 and len(out["head"]) == 64, out
