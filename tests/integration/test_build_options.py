"""What only test and bench builds may carry: the crash tests' stop hook exists only with
-Ddebug_hooks=true (the check build), and a -Dbench_noauth=true build never starts by accident
(bench/auth.sh checks that build's refusal and its marked answers)."""
import json
import os
import shlex
import signal
import subprocess
import tempfile

from conftest import BIN, DEBUG_HOOK, ROOT, Daemon, require_debug_hooks, run
from echo_project import make_echo_repo, stop_echo_daemon

BUILD = os.environ.get("BRANCHBOX_BUILD") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(BIN))))
HOOK_SOURCES = ("src/core/environment.c", "src/storage/storage-util.c")


def build_option(introspect_target, name):
    p = subprocess.run(["meson", "introspect", "--buildoptions", introspect_target],
                       capture_output=True, text=True, check=True, cwd=ROOT)
    return next(o["value"] for o in json.loads(p.stdout) if o["name"] == name)


def test_check_build_honours_the_stop_hook():
    assert build_option(BUILD, "debug_hooks") is True, f"{BUILD} is not a -Ddebug_hooks=true build"
    require_debug_hooks()
    tmp = tempfile.mkdtemp(prefix="bbx-hook-")
    d = Daemon(tmp, make_echo_repo(os.path.join(tmp, "repo")))
    try:
        os.environ["BRANCHBOX_DEBUG_STOP_AT"] = "deploy:intent"
        try:
            d.start()
        finally:
            del os.environ["BRANCHBOX_DEBUG_STOP_AT"]
        p = d.cli("deploy", check=False, timeout=300)
        assert p.returncode != 0
        d.proc.wait(timeout=30)
        assert d.proc.returncode == -signal.SIGKILL  # stopped at the named step
        d.log.close()
        d.log = None
        # Positive control: the same daemon without the variable deploys.
        d.start()
        d.cli("deploy", timeout=300)
        assert json.loads(d.cli("env", "info", "main", "--json").stdout)["state"] == "ready"
        assert "audit chain valid" in d.cli("audit", "verify").stdout
    finally:
        stop_echo_daemon(d)


def compile_hook_source(source, hooks, out_dir):
    """Compile source exactly as the build under test does, but with BRANCHBOX_DEBUG_HOOKS set
    to hooks, into out_dir (nothing is written into the build directory); returns the object."""
    with open(os.path.join(BUILD, "compile_commands.json")) as f:
        entry = next(e for e in json.load(f)
                     if os.path.normpath(os.path.join(e["directory"], e["file"])) ==
                     os.path.join(ROOT, source))
    argv = shlex.split(entry["command"])
    flags = [a for a in argv if a.startswith("-DBRANCHBOX_DEBUG_HOOKS=")]
    assert flags == ["-DBRANCHBOX_DEBUG_HOOKS=1"], flags  # the check build turns it on
    out = os.path.join(out_dir, f"{os.path.basename(source)}.{hooks}.o")
    cmd, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("-MQ", "-MF", "-o"):
            skip = True
        elif a == "-MD":
            pass
        elif a.startswith("-DBRANCHBOX_DEBUG_HOOKS="):
            cmd.append(f"-DBRANCHBOX_DEBUG_HOOKS={hooks}")
        else:
            cmd.append(a)
    cmd += ["-O0", "-o", out]  # -O0 only to compile faster; the last -O wins
    subprocess.run(cmd, cwd=entry["directory"], check=True, capture_output=True, timeout=600)
    with open(out, "rb") as f:
        return f.read()


def test_release_configuration_compiles_the_hook_out(tmp_path):
    # Off unless asked for: the release build (make demo, make bench) does not ask.
    assert build_option("meson.build", "debug_hooks") is False
    with open(os.path.join(ROOT, "Makefile")) as f:
        setups = [l for l in f if "meson setup" in l]
    assert [l for l in setups if "-Ddebug_hooks=true" in l] == \
        [l for l in setups if "$(CHECK_BUILD)" in l], setups
    for source in HOOK_SOURCES:
        # Positive control: the same compile with the option carries the variable's name.
        assert DEBUG_HOOK in compile_hook_source(source, 1, str(tmp_path)), source
        assert DEBUG_HOOK not in compile_hook_source(source, 0, str(tmp_path)), source


def test_an_authenticating_build_refuses_insecure_no_auth(tmp_path):
    """Only a -Dbench_noauth=true build runs without authentication; this one says so."""
    assert build_option(BUILD, "bench_noauth") is False
    p = run("serve", "--repo", ROOT, "--state", str(tmp_path / "s"), "--no-listen",
            "--insecure-no-auth", check=False, timeout=30)
    assert p.returncode == 2 and "--insecure-no-auth" in p.stderr and "authenticates" in p.stderr
    assert not os.path.exists(tmp_path / "s")  # refused before anything was set up
    assert "--insecure-no-auth" in run("serve", "--help").stdout
