"""Shared fixtures: the built binary, throwaway git repositories and a real daemon."""
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BRANCHBOX_BIN") or os.path.join(ROOT, "build-check", "src", "cli", "branchbox")


DEBUG_HOOK = b"BRANCHBOX_DEBUG_STOP_AT"


def require_debug_hooks(binary=None):
    """Crash tests stop the daemon through BRANCHBOX_DEBUG_STOP_AT, which only a build
    configured with -Ddebug_hooks=true carries (make check's build does)."""
    binary = binary or BIN
    # branchbox is a small front; the daemon and the hooks are in branchbox-cli next to it.
    cli = os.path.join(os.path.dirname(binary), "branchbox-cli")
    if os.path.exists(cli):
        binary = cli
    with open(binary, "rb") as f:
        if DEBUG_HOOK not in f.read():
            raise AssertionError(f"{binary} was built without -Ddebug_hooks=true, so "
                                 "BRANCHBOX_DEBUG_STOP_AT does nothing in it: run "
                                 "'meson configure BUILD -Ddebug_hooks=true' (make check does)")


def run(*args, env=None, check=True, input=None, timeout=120):
    """Run the branchbox binary; returns CompletedProcess with text output."""
    e = dict(os.environ)
    e.pop("BRANCHBOX_URL", None)
    e.pop("BRANCHBOX_TOKEN", None)
    if env:
        e.update(env)
    p = subprocess.run([BIN, *args], env=e, capture_output=True, text=True, input=input,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"branchbox {' '.join(args)} exited {p.returncode}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def make_repo(path, files=None):
    """A real git repository with one commit on main."""
    os.makedirs(path, exist_ok=True)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
    subprocess.run(["git", "init", "-q", "-b", "main", path], check=True, env=env)
    for name, content in (files or {"README": "hello\n"}).items():
        full = os.path.join(path, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(content)
    subprocess.run(["git", "-C", path, "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", path, "commit", "-q", "-m", "initial"], check=True, env=env)
    return path


UID_RANGE_SIZE = 4096


def pick_uid_range():
    """A uid range of its own for a test daemon: daemons running at the same time on this host
    (of this run or any other) must not overlap, and none may take the default range."""
    blocks = (0x7F000000 - 0x71000000) // UID_RANGE_SIZE
    first = 0x71000000 + random.randrange(blocks) * UID_RANGE_SIZE
    return f"{first}-{first + UID_RANGE_SIZE - 1}"


class Daemon:
    """A branchbox daemon on a temporary state dir, stopped by pid at teardown."""

    def __init__(self, tmp, repo, extra_args=()):
        self.tmp = tmp
        self.repo = repo
        self.state = os.path.join(tmp, "state")
        self.log_path = os.path.join(tmp, "daemon.log")
        self.extra_args = list(extra_args)
        self.uid_range = None if "--uid-range" in self.extra_args else pick_uid_range()
        self.proc = None
        self.port = None

    def start(self):
        for attempt in range(5):
            try:
                return self._start()
            except AssertionError as e:
                # Another running daemon holds an overlapping range: take another one.
                if not self.uid_range or "give each daemon its own --uid-range" not in str(e):
                    raise
                self.uid_range = pick_uid_range()
        raise AssertionError("no free uid range for the daemon")

    def _start(self):
        if os.environ.get("BRANCHBOX_DEBUG_STOP_AT"):
            require_debug_hooks()
        self.log = open(self.log_path, "w")
        own_range = ["--uid-range", self.uid_range] if self.uid_range else []
        self.proc = subprocess.Popen(
            [BIN, "serve", "--repo", self.repo, "--state", self.state, "--listen", "127.0.0.1:0",
             *own_range, *self.extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.read_log()}")
            m = re.search(r"http port (\d+)", self.read_log())
            if m and os.path.exists(self.socket):
                self.port = int(m.group(1))
                return self
            time.sleep(0.05)
        raise AssertionError("daemon did not become ready:\n" + self.read_log())

    @property
    def socket(self):
        return os.path.join(self.state, "branchbox.sock")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def cli(self, *args, token=None, check=True, via_http=False, **kw):
        env = {}
        if via_http:
            env["BRANCHBOX_URL"] = self.url
        else:
            env["BRANCHBOX_STATE"] = self.state
        if token:
            env["BRANCHBOX_TOKEN"] = token
        return run(*args, env=env, check=check, **kw)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def down(self):
        """After stop(): take the state dir off the host (see take_down)."""
        take_down(self.state, self.tmp)


def umount_under(path):
    """Lazily unmount everything mounted below path, deepest first."""
    for m in sorted((l.split()[4] for l in open("/proc/self/mountinfo")
                     if l.split()[4].startswith(path.rstrip("/") + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


def take_down(state, tmp):
    """Run 'branchbox down' on a stopped daemon's state dir so the test leaves no mount, loop
    device, network namespace or cgroup behind. When it fails, unmount what is under tmp anyway
    (so the host is not left dirty) and fail the test: down is what must work."""
    if not os.path.isdir(state):
        return  # the daemon never made it: nothing of it is on the host
    p = run("down", "--state", state, check=False, timeout=180)
    if p.returncode != 0:
        umount_under(tmp)
        raise AssertionError(f"branchbox down --state {state} exited {p.returncode}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")


@pytest.fixture
def tmpdir_path():
    d = tempfile.mkdtemp(prefix="bbx-it-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def repo(tmpdir_path):
    return make_repo(os.path.join(tmpdir_path, "repo"))


@pytest.fixture
def daemon(tmpdir_path, repo):
    d = Daemon(tmpdir_path, repo).start()
    yield d
    d.stop()
    d.down()
