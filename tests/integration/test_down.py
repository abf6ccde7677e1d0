"""branchbox down: a stopped daemon's state dir leaves nothing on the host (no mount, loop
device or cgroup), keeps its data so serve starts again, is refused while a daemon serves it,
and never touches another daemon's state dir.

Each absence is checked on the host (mountinfo, losetup, the cgroup tree) after a positive
control showed the same check finding it present: stopping a daemon leaves its pool mounted
and its netns pinned by design, so without down the checks below fail.
"""
import glob
import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import run
from echo_project import raw_request, start_echo_daemon, status_of, stop_echo_daemon


def mounts_under(path):
    path = os.path.realpath(path).rstrip("/") + "/"
    return [l.split()[4] for l in open("/proc/self/mountinfo") if l.split()[4].startswith(path)]


def loop_devices(image):
    p = subprocess.run(["losetup", "-j", image], capture_output=True, text=True, check=True)
    return [l.split(":")[0] for l in p.stdout.splitlines() if l.strip()]


def cgroup_prefix(state):
    return "d-" + hashlib.sha256(os.path.realpath(state).encode()).hexdigest()[:8]


def cgroups_of(state):
    prefix = cgroup_prefix(state)
    return (glob.glob(f"/sys/fs/cgroup/*/branchbox/{prefix}") +
            glob.glob(f"/sys/fs/cgroup/branchbox/{prefix}"))


def on_host(state):
    image = os.path.join(state, "pool", "btrfs.img")
    return {"mounts": mounts_under(state), "loops": loop_devices(image),
            "cgroups": cgroups_of(state)}


def down(state, check=True):
    p = run("down", "--state", state, "--json", check=False, timeout=180)
    if check:
        assert p.returncode == 0, f"down failed: {p.stdout}\n{p.stderr}"
    return p


def production_answers(d, timeout=180):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = raw_request(d, b"GET /preview/main/back HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
            if status_of(r) == 200 and b"GET /back HTTP/1.0" in r:
                return
            last = r[:200]
        except OSError as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"production did not answer again: {last!r}")


@pytest.fixture
def two_daemons():
    a = start_echo_daemon()
    try:
        b = start_echo_daemon()
    except BaseException:
        stop_echo_daemon(a)
        raise
    yield a, b
    try:
        stop_echo_daemon(a)
    finally:
        stop_echo_daemon(b)


def test_down_removes_what_the_state_dir_holds_and_serve_comes_back(two_daemons):
    d, other = two_daemons
    image = os.path.join(d.state, "pool", "btrfs.img")
    assert os.path.exists(image), "the echo project's pool is not a loop-backed btrfs image"

    # Positive control: a serving daemon has its pool mounted, a loop device and cgroups.
    running = on_host(d.state)
    assert running["mounts"] and running["loops"] and running["cgroups"], running
    other_before = on_host(other.state)
    assert other_before["mounts"] and other_before["loops"] and other_before["cgroups"]

    # Refused while the daemon serves the state dir, and nothing changed.
    p = down(d.state, check=False)
    assert p.returncode != 0, p.stdout
    report = json.loads(p.stdout)
    assert not report["ok"] and "daemon.lock" in report["error"], report
    assert os.path.realpath(d.state) in report["error"], report
    assert report["removed_nothing"], report
    assert on_host(d.state) == running
    production_answers(d)

    # Stopping leaves the pool mounted (by design): what down is for.
    d.stop()
    stopped = on_host(d.state)
    assert stopped["mounts"] and stopped["loops"], stopped

    report = json.loads(down(d.state).stdout)
    assert report["ok"] and not report["removed_nothing"], report
    assert report["pool_mount"] == os.path.join(os.path.realpath(d.state), "pool", "mnt"), report
    assert report["loop_devices"] == stopped["loops"], report
    assert any(n.endswith("/main") for n in report["netns"]), report
    assert on_host(d.state) == {"mounts": [], "loops": [], "cgroups": []}
    assert not glob.glob(os.path.join(d.state, "run", "netns", "*"))
    # The data stays.
    assert os.path.exists(image) and os.path.exists(os.path.join(d.state, "pool.json"))

    # Another daemon's state dir was not touched.
    assert on_host(other.state) == other_before
    production_answers(other)

    # A second run removes nothing and succeeds.
    report = json.loads(down(d.state).stdout)
    assert report["ok"] and report["removed_nothing"], report
    p = run("down", "--state", d.state, check=True)
    assert "nothing left on the host" in p.stdout, p.stdout

    # serve starts again on the same state dir and production comes back.
    d.start()
    production_answers(d)
    assert on_host(d.state)["mounts"], "the restarted daemon did not mount its pool again"


def pids_in_cgroups(state):
    pids = set()
    for top in cgroups_of(state):
        for dirpath, _, files in os.walk(top):
            if "cgroup.procs" in files:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    pids.update(int(x) for x in f.read().split())
    return pids


def test_down_kills_what_is_left_in_the_cgroups():
    """A process still in the daemon's cgroups (here one the test puts there after a SIGKILL
    of the daemon) is killed, and its cgroup removed."""
    d = start_echo_daemon()
    straggler = None
    try:
        d.stop(signal.SIGKILL)
        env_dirs = [os.path.join(top, "env-main") for top in cgroups_of(d.state)
                    if os.path.isdir(os.path.join(top, "env-main"))]
        assert env_dirs, f"no env-main cgroup left after SIGKILL: {cgroups_of(d.state)}"
        straggler = subprocess.Popen(["sleep", "600"])
        for dirpath in env_dirs:
            with open(os.path.join(dirpath, "cgroup.procs"), "w") as f:
                f.write(str(straggler.pid))
        # Positive control: the check below sees it in the cgroups.
        assert straggler.pid in pids_in_cgroups(d.state)
        report = json.loads(down(d.state).stdout)
        assert report["ok"] and report["cgroups"], report
        assert straggler.wait(timeout=30) == -signal.SIGKILL
        assert not cgroups_of(d.state)
        assert on_host(d.state) == {"mounts": [], "loops": [], "cgroups": []}
    finally:
        if straggler and straggler.poll() is None:
            straggler.kill()
            straggler.wait()
        stop_echo_daemon(d)


def test_down_errors_name_the_path(tmpdir_path):
    missing = os.path.join(tmpdir_path, "no-such-state")
    p = run("down", "--state", missing, check=False)
    assert p.returncode == 1 and missing in p.stderr, p.stderr
    assert not os.path.exists(missing), "down created the state dir it was asked about"

    p = run("down", "--help")
    assert "--state DIR" in p.stdout and "daemon.lock" in p.stdout

    p = run("down", "--bogus", check=False)
    assert p.returncode == 2


def test_down_on_an_empty_state_dir_removes_nothing(tmpdir_path):
    state = os.path.join(tmpdir_path, "state")
    os.makedirs(state)
    report = json.loads(down(state).stdout)
    assert report["ok"] and report["removed_nothing"], report
