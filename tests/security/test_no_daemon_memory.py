# SPDX-License-Identifier: MIT
"""Nothing of the daemon's memory exists in any sandbox (DESIGN.md 2a, "Nothing of the daemon
inside").

A real daemon deploys the example project (PostgreSQL, Redis and a python app, each in its own
sandbox). From the host, as root, the test reads the memory of every process of every sandbox
(/proc/PID/maps for the readable ranges, /proc/PID/mem for their bytes) and looks for the
daemon's two long-lived secrets, read from the state dir where the daemon keeps them: the token
key and the audit signing key (its Ed25519 seed), raw as stored and as hex and base64.

Positive controls: the same scan of the daemon finds both keys, and the scan of the app's
sandbox finds the app's own database password, so a scan that reads nothing cannot pass.
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BRANCHBOX_BIN") or os.path.join(ROOT, "build-check", "src", "cli", "branchbox")
# branchbox is a small front that execs branchbox-cli (the daemon) from its own directory.
CLI = os.path.join(os.path.dirname(BIN), "branchbox-cli")
BUILD = os.environ.get("BRANCHBOX_BUILD") or os.path.dirname(os.path.dirname(os.path.dirname(BIN)))
INIT = os.path.join(BUILD, "src", "sandbox", "branchbox-init")
EXAMPLE = os.path.join(ROOT, "examples", "todo")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Mappings larger than this are not read: the sanitizers reserve terabytes of shadow in the
# daemon. A sandboxed process must have none (asserted), so nothing can hide there.
MAX_REGION = 1 << 30


def _why_not_runnable():
    if os.geteuid() != 0:
        return "needs root (namespaces, cgroups, /proc/PID/mem of other users)"
    for path in (BIN, INIT):
        if not os.access(path, os.X_OK):
            return f"not built: {path}"
    if not shutil.which("git"):
        return "git is not installed (scripts/install-deps installs it)"
    return None


_reason = _why_not_runnable()
if _reason:
    if IN_CI:
        raise RuntimeError(f"daemon memory test cannot run in CI: {_reason}")
    pytest.skip(f"daemon memory test not runnable here: {_reason}", allow_module_level=True)


def cli(state, *args, timeout=120, check=True):
    env = dict(os.environ, BRANCHBOX_STATE=state)
    env.pop("BRANCHBOX_URL", None)
    env.pop("BRANCHBOX_TOKEN", None)
    p = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"branchbox {' '.join(args)} exited {p.returncode}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


@pytest.fixture(scope="module")
def daemon():
    """A daemon on a temporary state dir with production of the example deployed."""
    tmp = tempfile.mkdtemp(prefix="bbx-mem-")
    repo = os.path.join(tmp, "repo")
    state = os.path.join(tmp, "state")
    subprocess.run([os.path.join(EXAMPLE, "make-repo.sh"), repo], check=True, capture_output=True)
    log_path = os.path.join(tmp, "daemon.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([BIN, "serve", "--repo", repo, "--state", state,
                             "--listen", "127.0.0.1:0"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(state, "branchbox.sock")):
            assert proc.poll() is None, open(log_path).read()
            assert time.monotonic() < deadline, "daemon did not start:\n" + open(log_path).read()
            time.sleep(0.05)
        cli(state, "deploy", timeout=600)
        yield {"pid": proc.pid, "state": state}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        try:
            # Take the stopped daemon's state dir off the host; unmount by hand only when
            # that fails, and fail the test then.
            p = subprocess.run([BIN, "down", "--state", state], capture_output=True, text=True,
                               timeout=180)
            if p.returncode != 0:
                for m in sorted((l.split()[4] for l in open("/proc/self/mountinfo")
                                 if l.split()[4].startswith(tmp + "/")), reverse=True):
                    subprocess.run(["umount", "-l", m], capture_output=True)
                raise AssertionError(f"branchbox down --state {state} exited {p.returncode}\n"
                                     f"stdout: {p.stdout}\nstderr: {p.stderr}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def children(pid):
    """Children of every thread of pid (the daemon spawns sandboxes from its threads)."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def scan(pid, needles):
    """Which needles occur in pid's readable memory; also bytes read and mappings skipped."""
    found = set()
    scanned = skipped = 0
    longest = max(len(n) for n in needles.values())
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            start, end, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
            if perms[0] != "r" or end >= 1 << 63:
                continue
            if end - start > MAX_REGION:
                skipped += 1
                continue
            carry = b""
            off = start
            while off < end:
                try:
                    mem.seek(off)
                    chunk = mem.read(min(1 << 22, end - off))
                except OSError:  # [vvar], or a file mapping beyond the end of its file
                    break
                if not chunk:
                    break
                scanned += len(chunk)
                data = carry + chunk
                for name, needle in needles.items():
                    if needle in data:
                        found.add(name)
                carry = data[-(longest - 1):]
                off += len(chunk)
    return found, scanned, skipped


def key_needles(state):
    needles = {}
    for name in ("token.key", "audit-ed25519.key"):
        with open(os.path.join(state, "keys", name), "rb") as f:
            raw = f.read()
        assert len(raw) == 32, name
        needles[f"{name} raw"] = raw
        needles[f"{name} hex"] = raw.hex().encode()
        needles[f"{name} base64"] = base64.b64encode(raw).rstrip(b"=")
        needles[f"{name} base64url"] = base64.urlsafe_b64encode(raw).rstrip(b"=")
    return needles


def same_file(a, b):
    x, y = os.stat(a), os.stat(b)
    return (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)


def sandbox_inits(daemon):
    """The daemon's children that are pid 1 of a new pid namespace: its sandboxes."""
    own = os.readlink(f"/proc/{daemon['pid']}/ns/pid")
    out = []
    for pid in children(daemon["pid"]):
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != own:
                out.append(pid)
        except FileNotFoundError:
            pass
    return out


def test_sandbox_pid1_is_the_init_binary(daemon):
    info = json.loads(cli(daemon["state"], "env", "info", "main", "--json").stdout)
    pids = {p["name"]: p["pid"] for p in info["processes"]}
    assert set(pids) == {"db", "cache", "web"} and all(pids.values()), info
    inits = sandbox_inits(daemon)
    assert set(pids.values()) <= set(inits), (pids, inits)
    for pid in inits:
        exe = f"/proc/{pid}/exe"
        assert same_file(exe, INIT), (pid, os.readlink(exe))
        assert not same_file(exe, BIN) and not same_file(exe, CLI), pid
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().startswith(b"branchbox-init\0"), pid
        # Only the protocol's fds: /dev/null as 0-2, the sync pipe, its signalfd.
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert [fds[i] for i in (0, 1, 2)] == ["/dev/null"] * 3, fds
        assert sorted(fds) == [0, 1, 2, 3, 5] and fds[3].startswith("pipe:"), fds
    # Control: the daemon itself is the branchbox-cli binary (branchbox exec'd it).
    assert same_file(f"/proc/{daemon['pid']}/exe", CLI)


def test_no_daemon_key_in_any_sandbox_process(daemon):
    needles = key_needles(daemon["state"])

    # Control: the daemon holds both keys in memory, raw (the form the scan must find).
    found, scanned, _ = scan(daemon["pid"], needles)
    assert {"token.key raw", "audit-ed25519.key raw"} <= found, (found, scanned)

    # Control: the app's sandbox holds the app's own database password (its environment),
    # so the scan of sandboxed processes does read their memory.
    url = cli(daemon["state"], "env", "exec", "main", "--", "sh", "-c", "echo $DATABASE_URL",
              timeout=300).stdout.strip()
    password = re.search(r"://[^:]+:([^@]+)@", url).group(1).encode()
    info = json.loads(cli(daemon["state"], "env", "info", "main", "--json").stdout)
    web = next(p["pid"] for p in info["processes"] if p["name"] == "web")
    web_found = set()
    for pid in descendants(web):
        web_found |= scan(pid, {"password": password})[0]
    assert web_found == {"password"}

    inits = sandbox_inits(daemon)
    assert len(inits) >= 3, inits
    checked = 0
    for init in inits:
        for pid in [init] + descendants(init):
            try:
                found, scanned, skipped = scan(pid, needles)
            except (FileNotFoundError, ProcessLookupError):
                continue  # a short-lived process (e.g. a PostgreSQL backend) ended
            assert found == set(), (pid, found)
            assert scanned > 0 and skipped == 0, (pid, scanned, skipped)
            checked += 1
    # Each of db, cache and web has at least its init and its command.
    assert checked >= 6, checked
