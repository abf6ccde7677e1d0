# SPDX-License-Identifier: MIT
"""Hostile branches: the agent's branch, and everything its processes write, is attacker input.

TESTING.md 5a, DESIGN.md 2a. The attacker holds an agent token (env:read, env:create and
env:exec on pr-*) and pushes whatever it likes to its own branches. Cases assert on the host,
never on messages:
  - a root-owned scratch tree (/tmp/bbx-scratch-*/victim: files, subdirectories, a world-
    writable drop dir like /tmp) has the same owner, group, mode and content hash for every
    entry before and after the case, with nothing added or removed;
  - a random marker in that tree never appears in anything the agent gets back (exec output,
    logs, the create answer, files its hooks wrote);
  - the daemon still answers, every CLI call is bounded by a timeout, and destroy returns.

Classes, and the rule of DESIGN.md 2a each one holds the daemon to:
  1 test_nested_mount_*             two mounts whose sources nest; through the outer one the
                                    agent swaps the inner source for a symlink, FIFO or device:
                                    "never follow a path the agent can touch" (mount sources)
                                    and "which mount sources are allowed"
  2 test_mount_source_swapped       a mount source swapped while the environment lives, then
                                    exec, restart, clone: "never follow ..." (mount sources)
  3 test_source_root_symlink        source.root is a symlink the branch committed: "never
                                    follow ..." (checkout)
  4 test_code_tree_symlink          symlinks in the checkout, mount points below them or below
    test_build_hook_plants_*        what the build hook rewrote, a config dir that is a symlink:
    test_config_dir_symlink         "never follow ..." (checkout, hook working dirs) and
                                    "policy comes from production" (config)
  5 test_service_dir_planted        a compromised service's data dir (and its log) holding
                                    symlinks, FIFOs, hardlinks where the daemon writes: "never
                                    follow ..." (data and log dirs), "bounded everything"
  6 test_sanitize_dropped           "policy comes from production" (sanitize) and "mask before
    test_build_hook_reads_db        any agent code runs": the build hook gets no data, the
    test_deploy_hook_reads_db       deploy hook sees masked rows, exec, logs and the preview
    test_nothing_answers_before_ready  proxy answer nothing before ready
  7 test_policy_*                   preview profile, TTL and budget above production's are
                                    refused, below are applied: "policy comes from production"
  8 test_agent_command_bounded      commands that close their output and sleep, ignore TERM,
    test_destroy_while_exec_runs    fork away or flood: "bounded everything"
Positive controls (test_control_*) point the same checks at a deliberately unsafe operation
done by the test itself on a scratch copy, and show that each check can fail.
"""
import glob
import hashlib
import http.client
import json
import os
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from conftest import BIN, Daemon, make_repo, run  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
APP_UID = 64001  # src/core/service.h; only the positive controls use it
AGENT_VERBS = "env:read,env:create,env:exec"
T_CREATE = 300
T_EXEC = 60
T_SHORT = 30
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
CLIMB = "../" * 40  # more than any state dir is deep: excess ".." stays at /


def _why_not_runnable():
    if os.geteuid() != 0:
        return "needs root (the daemon makes namespaces, cgroups and volumes)"
    if not os.access(BIN, os.X_OK):
        return f"branchbox binary not executable: {BIN!r}"
    for need in ("/usr/lib/postgresql/15/bin/postgres", "/usr/bin/redis-server", "/usr/bin/python3.11"):
        if not os.access(need, os.X_OK):
            return f"{need} missing (run scripts/install-deps)"
    return None


_reason = _why_not_runnable()
if _reason and not IN_CI:
    pytest.skip(f"hostile-branch tests not runnable here: {_reason}", allow_module_level=True)


# ---------------------------------------------------------------------------------------------
# Bounded calls

class Answer:
    def __init__(self, args, rc=None, out="", err="", hung=False):
        self.args, self.rc, self.out, self.err, self.hung = args, rc, out, err, hung

    @property
    def ok(self):
        return self.rc == 0

    @property
    def text(self):
        return self.out + self.err

    def __repr__(self):
        state = "hung" if self.hung else f"exit {self.rc}"
        out = " ".join(self.out.split())
        return f"branchbox {' '.join(self.args)}: {state}\n  stdout: {out[-600:]}\n  stderr: {self.err[-1500:]}"


def bbx(d, *args, token=None, timeout=T_SHORT):
    """One CLI call as root (unix socket) or, with token, as the agent over HTTP; never blocks
    longer than timeout: a call that does not return is reported as hung."""
    env = {"BRANCHBOX_URL": d.url, "BRANCHBOX_TOKEN": token} if token else {"BRANCHBOX_STATE": d.state}
    try:
        p = run(*args, env=env, check=False, input="", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return Answer(args, out=out, hung=True)
    return Answer(args, p.returncode, p.stdout, p.stderr)


def http_call(d, method, path, token=None, body=None, timeout=T_SHORT):
    """(status, body text) over the daemon's HTTP port; (None, reason) if it did not answer."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
    headers = {"Authorization": "Bearer " + token} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return None, f"no answer: {e}"
    finally:
        conn.close()


def git(repo, *args):
    subprocess.run(["git", "-C", repo, *args], check=True, env=GIT_ENV, capture_output=True, timeout=60)


def make_branch(repo, name, config=None, files=None, symlinks=None, remove=(), base="main"):
    """Commit branch `name` (reset to base) with paths removed, files written, symlinks made
    (in that order) and, unless None, .branchbox/config.yaml replaced by config."""
    wt = tempfile.mkdtemp(prefix="bbx-wt-")
    try:
        git(repo, "worktree", "add", "-q", "-f", "-B", name, wt, base)
        for rel in remove:
            git(wt, "rm", "-r", "-q", "--", rel)
        for rel, content in (files or {}).items():
            path = os.path.join(wt, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(content)
        for rel, target in (symlinks or {}).items():
            path = os.path.join(wt, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(target, path)
        if config is not None:
            os.makedirs(os.path.join(wt, ".branchbox"), exist_ok=True)
            with open(os.path.join(wt, ".branchbox", "config.yaml"), "w") as f:
                f.write(config)
        git(wt, "add", "-A")
        git(wt, "commit", "-q", "--allow-empty", "-m", f"hostile: {name}")
    finally:
        git(repo, "worktree", "remove", "--force", wt)
        shutil.rmtree(wt, ignore_errors=True)
    return name


# ---------------------------------------------------------------------------------------------
# The host-side oracle

class Scratch:
    """A root-owned tree outside every environment, recorded entry by entry.

    victim/ 0755, files 0644, sub/ 0755, drop/ 1777 (world-writable like /tmp, so that any
    write access from inside shows up as a new entry), marker with random content, cfg/ with a
    project config that has no sanitize (for branches that point their config dir here)."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="bbx-scratch-")
        os.chmod(self.root, 0o755)
        self.victim = os.path.join(self.root, "victim")
        self.marker = "bbx-marker-" + secrets.token_hex(16)
        layout = {"a.txt": "alpha\n", "sub/b.txt": "beta\n", "marker": self.marker + "\n",
                  "cfg/config.yaml": pg_config(sanitize=False)}
        for d in ("", "sub", "cfg", "drop"):
            os.makedirs(os.path.join(self.victim, d), exist_ok=True)
            os.chmod(os.path.join(self.victim, d), 0o1777 if d == "drop" else 0o755)
        for rel, content in layout.items():
            with open(os.path.join(self.victim, rel), "w") as f:
                f.write(content)
            os.chmod(os.path.join(self.victim, rel), 0o644)
        for dirpath, dirnames, filenames in os.walk(self.root):
            for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
                os.lchown(n, 0, 0)
        self.watched = [self.root]
        self.before = self.state()

    def watch(self, path):
        """Also record path (a root-owned file outside the tree)."""
        self.watched.append(path)
        self.before = self.state()

    @staticmethod
    def _entry(path):
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                what = hashlib.sha256(f.read()).hexdigest()[:16]
        elif stat.S_ISLNK(st.st_mode):
            what = "-> " + os.readlink(path)
        else:
            what = ""
        return (st.st_uid, st.st_gid, oct(st.st_mode), what)

    def state(self):
        res = {}
        for top in self.watched:
            if not os.path.lexists(top):
                continue
            res[top] = self._entry(top)
            if not os.path.isdir(top) or os.path.islink(top):
                continue
            for dirpath, dirnames, filenames in os.walk(top):
                for n in dirnames + filenames:
                    p = os.path.join(dirpath, n)
                    res[p] = self._entry(p)
        return res

    def changes(self):
        now = self.state()
        out = []
        for p in sorted(set(self.before) | set(now)):
            b, a = self.before.get(p), now.get(p)
            if b == a:
                continue
            if b is None:
                out.append(f"{p}: appeared, owner {a[0]}:{a[1]} mode {a[2]}")
            elif a is None:
                out.append(f"{p}: disappeared")
            else:
                for i, what in enumerate(("uid", "gid", "mode", "content")):
                    if b[i] != a[i]:
                        out.append(f"{p}: {what} {b[i]} -> {a[i]}")
        return out

    def cleanup(self):
        subprocess.run(["rm", "-rf", "--one-file-system", self.root], check=False)


@pytest.fixture
def scratch():
    s = Scratch()
    yield s
    s.cleanup()


def probe_script(s):
    """A shell script that tries to read the marker and write next to it through every path
    an escape could open (a mount, /app, /proc/*/root), then prints what it read."""
    rel = s.victim.lstrip("/")
    bases = ["", "/app", "/app/a", "/app/b", "/app/a/y", "/app/uploads", "/app/all", "/app/all/uploads",
             "/app/evil", "/app/evil/sub", "/app/deep", "/app/deep/x", "/proc/self/root", "/proc/1/root"]
    dirs = sorted({(d.rstrip("/") or "/") for b in bases for d in (b, f"{b}/{rel}", f"{b}/victim")})
    reads = " ".join(shlex.quote(os.path.join(d, "marker")) for d in dirs)
    writes = " ".join(shlex.quote(os.path.join(d, sub)) for d in dirs for sub in ("", "drop"))
    return (f'for f in {reads}; do cat "$f" 2>/dev/null || :; done; '
            f'for d in {writes}; do touch "$d/pwned" 2>/dev/null || :; done; echo probe-done')


def assert_host_unchanged(s, seen, what):
    changed = s.changes()
    assert not changed, (f"{what}: the root-owned scratch tree outside the environment changed:\n  "
                         + "\n  ".join(changed))
    leaked = [x for x in seen if s.marker in x]
    assert not leaked, (f"{what}: the host marker {s.marker} was readable from inside:\n"
                        + "\n---\n".join(x[-2000:] for x in leaked))


def run_probe(proj, name, s, seen):
    """Run the probe in name as the agent; what it printed goes to seen."""
    p = proj.sh(name, probe_script(s))
    assert not p.hung, f"exec in {name} did not return: {p}"
    seen.append(p.text)
    return p


# ---------------------------------------------------------------------------------------------
# Projects

LIGHT_PREVIEW = {"profile": "{cpu: 0.5, memory: 192M}", "ttl": "2h",
                 "budget": "{cpu_seconds: 1h, memory: 512M, disk: 1G, wall_time: 2h}"}


def light_config(mounts=None, root=None, hooks=None, preview=LIGHT_PREVIEW, apps_before=""):
    """A project with one application `app` (no web, no services): previews start in well
    under a second, so classes 1-4, 7 and 8 can afford one environment per case."""
    mounts = {"/uploads": "uploads"} if mounts is None else mounts
    lines = ["applications:", apps_before.rstrip("\n")] if apps_before else ["applications:"]
    lines += ["  app:", '    type: "python:3.11"']
    if root is not None:
        lines += ["    source:", f"      root: {json.dumps(root)}"]
    if hooks:
        lines += ["    hooks:"] + [f"      {k}: {json.dumps(v)}" for k, v in hooks.items()]
    if mounts:
        lines += ["    mounts:"] + [f"      {json.dumps(p)}: {{source: storage, source_path: {json.dumps(sp)}}}"
                                    for p, sp in mounts.items()]
    if preview is not None:
        lines += ["environments:", "  preview:"] + [f"    {k}: {v}" for k, v in preview.items()]
    return "\n".join(lines) + "\n"


# A realistically slow mask (a big table takes a while): until it commits, the unmasked rows
# stay readable by any snapshot taken before, which is what mask-before-expose must rule out.
MASK_SQL = "UPDATE users SET email = 'user' || id || '@masked.invalid' FROM (SELECT pg_sleep(1)) AS slow"
PG_HOOKS = {"build": "python3 -m py_compile app.py", "deploy": "python3 seed.py"}


def pg_config(sanitize=True, hooks=None, sanitize_sql=MASK_SQL):
    hooks = PG_HOOKS if hooks is None else hooks
    text = ("applications:\n"
            "  web:\n"
            '    type: "python:3.11"\n'
            "    web:\n"
            '      commands: {start: "python3 app.py"}\n'
            "      port: 8000\n"
            "      healthcheck: /healthz\n"
            "    hooks:\n"
            + "".join(f"      {k}: {json.dumps(v)}\n" for k, v in hooks.items()) +
            "    relationships:\n"
            '      database: "db:postgresql"\n'
            '      cache: "cache:redis"\n'
            "    mounts:\n"
            '      "/uploads": {source: storage, source_path: uploads}\n'
            "services:\n"
            "  db:\n"
            '    type: "postgresql:15"\n'
            "  cache:\n"
            '    type: "redis:7.0"\n'
            "environments:\n"
            "  preview:\n"
            "    profile: {cpu: 0.5, memory: 256M}\n"
            "    ttl: 2h\n")
    if sanitize:
        text += ("sanitize:\n"
                 "  - name: mask-emails\n"
                 f"    sql: {json.dumps(sanitize_sql)}\n"
                 "    service: db\n")
    return text


PG_APP = '''import http.server, os
import psycopg2


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\\n"
        if self.path.startswith("/users"):
            c = psycopg2.connect(os.environ["DATABASE_URL"])
            try:
                cur = c.cursor()
                cur.execute("SELECT email FROM users ORDER BY id")
                body = "".join(r[0] + "\\n" for r in cur.fetchall()).encode()
            finally:
                c.close()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''

PG_SEED = '''import os
import psycopg2

c = psycopg2.connect(os.environ["DATABASE_URL"])
c.autocommit = True
c.cursor().execute("CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, email text NOT NULL)")
'''

# What a hostile hook or command runs to get at the rows: credentials from DATABASE_URL or from
# PLATFORM_RELATIONSHIPS, retried until the database answers, one snapshot read as soon as it
# does; writes what it saw to argv[2] and prints it.
STEAL = r'''import base64, json, os, sys, time
import psycopg2


def url(mode):
    if mode == "database-url":
        return os.environ.get("DATABASE_URL")
    rels = os.environ.get("PLATFORM_RELATIONSHIPS")
    if not rels:
        return None
    for endpoints in json.loads(base64.b64decode(rels)).values():
        for e in endpoints:
            if e.get("scheme") == "pgsql":
                return "postgresql://%s:%s@%s:%s/%s" % (e["username"], e["password"], e["host"], e["port"], e["path"])
    return None


u = url(sys.argv[1])
seen = "no database credentials"
if u:
    deadline = time.time() + 8
    while time.time() < deadline:
        try:
            c = psycopg2.connect(u, connect_timeout=2)
            cur = c.cursor()
            cur.execute("SELECT email FROM users ORDER BY id")
            seen = " ".join(r[0] for r in cur.fetchall())
            break
        except Exception as e:
            seen = "error: %s" % str(e).strip()
            time.sleep(0.005)
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        f.write(seen + "\n")
print("seen:", seen)
'''

ROWS = ("import os,psycopg2;c=psycopg2.connect(os.environ['DATABASE_URL']);cur=c.cursor();"
        "cur.execute('SELECT email FROM users ORDER BY id');print(' '.join(r[0] for r in cur.fetchall()))")


class Project:
    """A daemon with a deployed production and the agent's token."""

    def __init__(self, d, token):
        self.d, self.token, self.repo = d, token, d.repo
        with open(os.path.join(d.state, "pool.json")) as f:
            pool = json.load(f)
        self.volumes = pool["root"]

    # The agent (HTTP, its token).
    def create(self, name, branch=None, parent=None):
        args = ["env", "create", name, "--json"]
        if branch:
            args += ["--branch", branch]
        if parent:
            args += ["--from", parent]
        a = bbx(self.d, *args, token=self.token, timeout=T_CREATE)
        print(a)  # shown with the failure of a case
        return a

    def sh(self, name, script, timeout=T_EXEC):
        return bbx(self.d, "env", "exec", name, "--", "/bin/sh", "-c", script, token=self.token, timeout=timeout)

    def logs(self, name, process=None):
        return bbx(self.d, "env", "logs", name, *([process] if process else []), token=self.token)

    # The host's view (root, unix socket).
    def root(self, *args, timeout=T_SHORT):
        return bbx(self.d, *args, timeout=timeout)

    def names(self):
        p = self.root("env", "list", "--json")
        assert p.ok and not p.hung, f"env list failed: {p}"
        return [e["name"] for e in json.loads(p.out)]

    def info(self, name):
        p = self.root("env", "info", name, "--json")
        return json.loads(p.out) if p.ok else None

    def volume(self, name):
        return os.path.join(self.volumes, name)

    def restart(self, name):
        """Stop and start name as its owner would (or a daemon restart does)."""
        res = [self.root("env", "stop", name, timeout=120), self.root("env", "start", name, timeout=T_CREATE)]
        print(*res, sep="\n")
        return res

    def assert_answers(self):
        status, body = http_call(self.d, "GET", "/healthz", timeout=10)
        assert status == 200, f"the daemon no longer answers /healthz: {status} {body}"
        p = self.root("env", "list", "--json")
        assert p.ok and not p.hung, f"the daemon no longer answers env list: {p}"


class Previews:
    """Destroys the previews a case made, and fails the case if a destroy does not return."""

    def __init__(self, proj):
        self.proj, self.names = proj, []

    def __enter__(self):
        return self

    def add(self, name):
        self.names.append(name)
        return name

    def __exit__(self, exc_type, exc, tb):
        stuck = []
        for name in reversed(self.names):
            p = self.proj.root("env", "destroy", name, timeout=180)
            if p.hung or (not p.ok and name in self.proj.names()):
                stuck.append(repr(p))
        if exc_type is None:
            assert not stuck, "destroy did not finish:\n" + "\n".join(stuck)
        return False


def start_project(prefix, files, extra_args=()):
    tmp = tempfile.mkdtemp(prefix=prefix)
    repo = make_repo(os.path.join(tmp, "repo"), files)
    d = Daemon(tmp, repo, extra_args=list(extra_args)).start()
    return tmp, d


def stop_project(tmp, d):
    d.stop()
    try:
        d.down()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mint_agent(d):
    p = bbx(d, "token", "create", "--agent", "attacker", "--verbs", AGENT_VERBS, "--env", "pr-*",
            "--ttl", "2h", "--json")
    assert p.ok, f"minting the agent token failed: {p}"
    return json.loads(p.out)["token"]


@pytest.fixture(scope="module")
def light():
    tmp, d = start_project("bbx-hostile-light-", {".branchbox/config.yaml": light_config(), "README": "hi\n"})
    try:
        p = bbx(d, "deploy", timeout=T_CREATE)
        assert p.ok, f"production deploy failed: {p}"
        make_branch(d.repo, "plain")
        yield Project(d, mint_agent(d))
    finally:
        stop_project(tmp, d)


REAL = "real-" + secrets.token_hex(6)  # in production's emails only; masked copies never hold it


@pytest.fixture(scope="module")
def pg():
    files = {".branchbox/config.yaml": pg_config(), "app.py": PG_APP, "seed.py": PG_SEED, "steal.py": STEAL}
    tmp, d = start_project("bbx-hostile-pg-", files)
    try:
        p = bbx(d, "deploy", timeout=600)
        assert p.ok, f"production deploy failed: {p}"
        seed = ("import os,psycopg2;c=psycopg2.connect(os.environ['DATABASE_URL']);c.autocommit=True;"
                "cur=c.cursor();cur.execute('DELETE FROM users');"
                f"[cur.execute('INSERT INTO users (email) VALUES (%s)', (n + '@{REAL}.example',)) "
                "for n in ('alice', 'bob', 'carol')]")
        p = bbx(d, "env", "exec", "main", "--", "python3", "-c", seed, timeout=T_EXEC)
        assert p.ok, f"seeding production failed: {p}"
        yield Project(d, mint_agent(d))
    finally:
        stop_project(tmp, d)


def plant(path, kind, target=None):
    """Put kind (symlink, fifo, device) at path on the host, replacing what is there."""
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "symlink":
        os.symlink(target, path)
    elif kind == "fifo":
        os.mkfifo(path, 0o666)
    elif kind == "device":
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null: harmless if opened
    else:
        raise ValueError(kind)


def symlink_chain(s, kind, where):
    """Symlinks named where (+ hops) that lead to the scratch victim dir, per kind.
    Returns {name: target} relative to the directory holding them."""
    v = s.victim
    if kind == "absolute":
        return {where: v}
    if kind == "relative":
        return {where: CLIMB + v.lstrip("/")}
    if kind == "chained":
        return {where: where + "-hop1", where + "-hop1": where + "-hop2", where + "-hop2": v}
    if kind == "proc-self-root":
        return {where: "/proc/self/root" + v}
    raise ValueError(kind)


def ln_script(links, base):
    return "; ".join(f"ln -s {shlex.quote(t)} {shlex.quote(os.path.join(base, n))}"
                     for n, t in reversed(list(links.items())))


# ---------------------------------------------------------------------------------------------
# Positive controls: every check below can fail

@pytest.mark.parametrize("unsafe", ["chown-through-symlink", "write-through-symlink", "chmod-through-symlink",
                                    "file-in-drop-dir", "truncate-through-hardlink"])
def test_control_oracle_sees_unsafe_host_operation(scratch, unsafe):
    """The test does, as root, what a path-following daemon would do, on its own scratch tree."""
    links = tempfile.mkdtemp(prefix="bbx-links-")
    try:
        link = os.path.join(links, "source")
        if unsafe == "chown-through-symlink":
            os.symlink(scratch.victim, link)
            os.chown(link, APP_UID, APP_UID)  # follows, as chown(2) on a path does
        elif unsafe == "write-through-symlink":
            os.symlink(os.path.join(scratch.victim, "a.txt"), link)
            with open(link, "w") as f:
                f.write("written by root through a symlink\n")
        elif unsafe == "chmod-through-symlink":
            os.symlink(scratch.victim, link)
            os.chmod(link, 0o777)
        elif unsafe == "file-in-drop-dir":
            with open(os.path.join(scratch.victim, "drop", "pwned"), "w"):
                pass
        elif unsafe == "truncate-through-hardlink":
            os.link(os.path.join(scratch.victim, "sub", "b.txt"), link)
            with open(link, "w") as f:
                f.write("")
        assert scratch.changes(), f"{unsafe}: the oracle did not notice"
        with pytest.raises(AssertionError, match="scratch tree outside the environment changed"):
            assert_host_unchanged(scratch, [], unsafe)
    finally:
        shutil.rmtree(links, ignore_errors=True)


def test_control_probe_reads_marker_through_a_followed_bind(scratch):
    """Binding a path string that is a symlink follows it (the unsafe operation of classes 1-3):
    the probe then reads the marker and writes into the drop dir, and both checks fail."""
    links = tempfile.mkdtemp(prefix="bbx-links-")
    try:
        link = os.path.join(links, "hostroot")
        os.symlink(scratch.victim, link)
        p = subprocess.run([BIN, "sandbox", "run", "--rw", f"{link}:/app", "--uid", str(APP_UID), "--",
                            "/bin/sh", "-c", probe_script(scratch)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert scratch.marker in p.stdout, p.stdout
        assert any("drop/pwned" in c for c in scratch.changes()), scratch.changes()
    finally:
        shutil.rmtree(links, ignore_errors=True)


def test_control_exec_output_shows_a_visible_marker(light, scratch):
    """What lies in an environment's own mount is readable by exec: the marker check on exec
    output would catch a marker that became visible."""
    name = "pr-ctl-visible"
    with Previews(light) as pv:
        pv.add(name)
        c = light.create(name, branch="plain")
        assert c.ok, c
        assert light.sh(name, "true").ok  # mount sources are made at the first process
        shutil.copy(os.path.join(scratch.victim, "marker"), os.path.join(light.volume(name), "mounts", "app",
                                                                           "uploads", "marker"))
        p = light.sh(name, probe_script(scratch))
        assert p.ok and "probe-done" in p.out, p
        with pytest.raises(AssertionError, match="host marker"):
            assert_host_unchanged(scratch, [p.out], "control")


def test_control_hang_is_detected():
    """A FIFO with no reader blocks its writer: the bounded call reports that as hung."""
    d = tempfile.mkdtemp(prefix="bbx-fifo-")
    try:
        fifo = os.path.join(d, "f")
        os.mkfifo(fifo)
        try:
            subprocess.run(["/bin/sh", "-c", f"echo x > {fifo}"], timeout=2)
            hung = False
        except subprocess.TimeoutExpired:
            hung = True
        assert hung
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_control_production_rows_are_unmasked(pg):
    """The masked-rows checks can fail: production's own rows hold REAL, and the hostile read
    used by the hooks finds them when pointed at production."""
    p = pg.root("env", "exec", "main", "--", "python3", "-c", ROWS, timeout=T_EXEC)
    assert p.ok and p.out.count(REAL) == 3, p
    p = pg.root("env", "exec", "main", "--", "python3", "-c", STEAL, "database-url", timeout=T_EXEC)
    assert p.ok and REAL in p.out, p
    p = pg.root("env", "exec", "main", "--", "python3", "-c", STEAL, "relationships", timeout=T_EXEC)
    assert p.ok and REAL in p.out, p


# ---------------------------------------------------------------------------------------------
# Class 1: nested mount sources

NESTED = {"/a": "x", "/b": "x/y"}
NESTED_VARIANTS = ["symlink-absolute", "symlink-relative", "symlink-chained", "symlink-proc-self-root",
                   "fifo", "device"]


def test_nested_mount_sources_refused(light):
    """Two mounts whose sources nest give the agent, through the outer one, the inner one's
    source: config check refuses that layout, and so does env create."""
    cfg = light_config(mounts=NESTED)
    d = tempfile.mkdtemp(prefix="bbx-cfg-")
    try:
        os.makedirs(os.path.join(d, ".branchbox"))
        # Control: the same project with two separate mount sources passes config check.
        with open(os.path.join(d, ".branchbox", "config.yaml"), "w") as f:
            f.write(light_config(mounts={"/a": "x", "/b": "z"}))
        ok = bbx(light.d, "config", "check", d)
        assert ok.ok, f"control: a project with two separate mounts is refused: {ok}"
        with open(os.path.join(d, ".branchbox", "config.yaml"), "w") as f:
            f.write(cfg)
        p = bbx(light.d, "config", "check", d)
        assert not p.hung and p.rc != 0, f"config check accepts mount sources x and x/y: {p}"
    finally:
        shutil.rmtree(d, ignore_errors=True)
    name = make_branch(light.repo, "pr-nest-refused", config=cfg)
    with Previews(light) as pv:
        pv.add(name)
        c = light.create(name)
        listed = name in light.names()
    assert not c.hung and c.rc != 0 and not listed, f"env create accepted nested mount sources: {c}"


@pytest.mark.parametrize("variant", NESTED_VARIANTS)
def test_nested_mount_swapped_from_inside(light, scratch, variant):
    """The agent replaces x/y (the inner mount's source, reachable through /a) and runs another
    exec; then the environment restarts. The daemon must not chown, bind or expose what x/y
    now points at."""
    name = make_branch(light.repo, f"pr-nest-{variant}", config=light_config(mounts=NESTED))
    seen = []
    with Previews(light) as pv:
        pv.add(name)
        c = light.create(name)
        seen.append(c.text)
        assert not c.hung, c
        if c.ok:
            kind = variant.split("-", 1)
            if kind[0] == "symlink":
                attack = "rm -rf /app/a/y && " + ln_script(symlink_chain(scratch, kind[1], "y"), "/app/a")
            elif kind[0] == "fifo":
                attack = "rm -rf /app/a/y && mkfifo /app/a/y"
            else:
                attack = "rm -rf /app/a/y && mknod /app/a/y c 1 3"
            p = light.sh(name, attack)
            seen.append(p.text)
            if kind[0] == "device" and not p.ok:
                # mknod needs CAP_MKNOD, which nothing inside has: the device node is planted
                # from the host, simulating a compromised process that could make one.
                plant(os.path.join(light.volume(name), "mounts", "app", "x", "y"), "device")
            else:
                assert p.ok, f"the attack itself did not run: {p}"
            run_probe(light, name, scratch, seen)
            run_probe(light, name, scratch, seen)
            for p in light.restart(name):
                assert not p.hung, f"restart after the swap did not return: {p}"
                seen.append(p.text)
            run_probe(light, name, scratch, seen)
        light.assert_answers()
    assert_host_unchanged(scratch, seen, f"nested mounts, x/y swapped for {variant}")


# ---------------------------------------------------------------------------------------------
# Class 2: a mount's source swapped while the environment lives

SWAP_VARIANTS = ["symlink-absolute", "symlink-relative", "symlink-chained", "symlink-proc-self-root",
                 "fifo", "device"]


@pytest.mark.parametrize("variant", SWAP_VARIANTS)
def test_mount_source_swapped(light, scratch, variant):
    """`uploads`, the source of production's /uploads mount in a preview's volume, becomes a
    symlink (absolute, climbing, chained, through /proc/self/root), a FIFO or a device node.
    An exec, a restart and a clone of that preview must not follow it.

    The agent reaches a mount source's parent itself only through nested mounts (class 1; a
    mount of "." is refused by the sandbox), so the swap is planted from the host here,
    standing for any process of the environment that got write access to its mount area."""
    parent, child = f"pr-swap-{variant}", f"pr-swap-{variant}-c"
    kind = variant.split("-", 1)
    seen = []
    with Previews(light) as pv:
        pv.add(parent)
        c = light.create(parent, branch="plain")
        assert c.ok, f"a preview of production's own layout failed: {c}"
        base = os.path.join(light.volume(parent), "mounts", "app")
        if kind[0] == "symlink":
            links = symlink_chain(scratch, kind[1], "uploads")
            for n in links:
                plant(os.path.join(base, n), "symlink", links[n])
        else:
            plant(os.path.join(base, "uploads"), kind[0])
        run_probe(light, parent, scratch, seen)
        for p in light.restart(parent):
            assert not p.hung, f"restart after the swap did not return: {p}"
            seen.append(p.text)
        pv.add(child)
        c = light.create(child, branch="plain", parent=parent)
        seen.append(c.text)
        assert not c.hung, f"create from the swapped preview did not return: {c}"
        if c.ok:
            run_probe(light, child, scratch, seen)
        light.assert_answers()
    assert_host_unchanged(scratch, seen, f"mount source swapped for {variant}")


# ---------------------------------------------------------------------------------------------
# Class 3: source.root through a symlink in the branch

ROOT_VARIANTS = ["root", "scratch-absolute", "relative-climbing", "chained", "proc-self-root"]


@pytest.mark.parametrize("variant", ROOT_VARIANTS)
def test_source_root_symlink(light, scratch, variant):
    """source.root names a symlink the branch committed. Whatever it points at must never be
    bound at /app (read-only for exec, writable for the build hook): env create refuses."""
    v = scratch.victim
    links = {"root": {"hostroot": "/"},
             "scratch-absolute": {"hostroot": v},
             "relative-climbing": {"hostroot": CLIMB + v.lstrip("/")},
             "chained": {"hostroot": "hop1", "hop1": "hop2", "hop2": v},
             "proc-self-root": {"hostroot": "/proc/self/root"}}[variant]
    probe = probe_script(scratch)
    cfg = light_config(mounts={}, root="hostroot", hooks={"build": probe})
    name = make_branch(light.repo, f"pr-root-{variant}", config=cfg, symlinks=links)
    seen = []
    with Previews(light) as pv:
        pv.add(name)
        c = light.create(name)
        seen.append(c.text)
        assert not c.hung, c
        seen.append(light.logs(name, "deploy").text)
        if c.ok:
            run_probe(light, name, scratch, seen)
        listed = name in light.names()
        light.assert_answers()
    assert_host_unchanged(scratch, seen, f"source.root -> {variant}")
    assert c.rc != 0 and not listed, f"env create accepted source.root through a symlink ({variant}): {c}"


# ---------------------------------------------------------------------------------------------
# Class 4: the checkout, mount points below it, build hooks and the config dir

CODE_VARIANTS = ([f"checkout-{k}" for k in ("absolute", "relative", "chained", "proc-self-root")]
                 + ["checkout-file-target"]
                 + [f"mount-point-below-{k}" for k in ("absolute", "relative", "chained", "proc-self-root")])


@pytest.mark.parametrize("variant", CODE_VARIANTS)
def test_code_tree_symlink(light, scratch, variant):
    """The checkout is chowned to the application's uid and mount points are made in it; a
    symlink the branch committed (evil -> scratch) must be neither followed by the chown nor
    used as the parent of a mount point (/evil/sub), at create, exec, restart or destroy."""
    if variant == "checkout-file-target":
        links, mounts = {"evil": os.path.join(scratch.victim, "a.txt")}, None
    else:
        where, kind = variant.rsplit("-", 1) if not variant.endswith("proc-self-root") else \
            (variant[:-len("-proc-self-root")], "proc-self-root")
        links = symlink_chain(scratch, kind, "evil")
        mounts = {"/uploads": "uploads", "/evil/sub": "evilsub"} if where == "mount-point-below" else None
    name = make_branch(light.repo, f"pr-code-{variant}", config=light_config(mounts=mounts), symlinks=links)
    seen = []
    with Previews(light) as pv:
        pv.add(name)
        c = light.create(name)
        seen.append(c.text)
        assert not c.hung, c
        if c.ok:
            run_probe(light, name, scratch, seen)
            for p in light.restart(name):
                assert not p.hung, f"restart did not return: {p}"
            run_probe(light, name, scratch, seen)
        light.assert_answers()
    # After destroy too: removing the checkout must not have walked into the target.
    assert_host_unchanged(scratch, seen, f"branch symlink ({variant})")


BUILD_VARIANTS = ["mount-parent-absolute", "mount-parent-relative", "mount-parent-proc-self-root",
                  "sibling-app-mount-point-symlink", "sibling-app-mount-point-fifo"]


@pytest.mark.parametrize("variant", BUILD_VARIANTS)
def test_build_hook_plants_in_code_tree(light, scratch, variant):
    """The build hook may write /app. It moves a mount point's parent away and leaves a symlink
    to the scratch dir (mount /deep/x), or a sibling application sharing the checkout (which
    has no mount there) replaces /app/uploads; then hooks, an exec and a restart make mount
    points again, which must not go through what the hook left."""
    if variant.startswith("mount-parent-"):
        kind = variant[len("mount-parent-"):]
        links = symlink_chain(scratch, kind, "deep")
        build = "mv /app/deep /app/deep.moved && " + ln_script(links, "/app")
        cfg = light_config(mounts={"/deep/x": "deepx"}, hooks={"build": build})
    else:
        if variant.endswith("symlink"):
            build = "rm -rf /app/uploads && " + ln_script(symlink_chain(scratch, "absolute", "uploads"), "/app")
        else:
            build = "rm -rf /app/uploads && mkfifo /app/uploads"
        helper = ('  aaa-helper:\n    type: "python:3.11"\n'
                  f"    hooks:\n      build: {json.dumps(build)}\n")
        cfg = light_config(hooks={"build": "true"}, apps_before=helper)
    name = make_branch(light.repo, f"pr-build-{variant}", config=cfg)
    seen = []
    with Previews(light) as pv:
        pv.add(name)
        c = light.create(name)
        seen.append(c.text)
        assert not c.hung, c
        if c.ok:
            run_probe(light, name, scratch, seen)
            for p in light.restart(name):
                assert not p.hung, f"restart did not return: {p}"
            run_probe(light, name, scratch, seen)
        light.assert_answers()
    assert_host_unchanged(scratch, seen, f"build hook plants ({variant})")


# ---------------------------------------------------------------------------------------------
# Class 8: commands the agent runs are bounded whatever they do with their fds

T_BOUND = 10  # generous against the 2 s timeout the commands ask for: past it, a call is hung


def exec_procs(proj, name):
    """Pids still in the cgroups of name's execs and hooks, read on the host."""
    pids = []
    for pat in (f"/sys/fs/cgroup/pids/branchbox/*/env-{name}/*/cgroup.procs",
                f"/sys/fs/cgroup/branchbox/*/env-{name}/*/cgroup.procs",
                f"/sys/fs/cgroup/unified/branchbox/*/env-{name}/*/cgroup.procs"):
        for f in glob.glob(pat):
            try:
                pids += [int(x) for x in open(f).read().split()]
            except OSError:
                pass
    return pids


HOSTILE_COMMANDS = {
    "close-output-and-sleep": "exec >&- 2>&- </dev/null; sleep 100",
    "ignore-term-and-sleep": "trap '' TERM; echo ignoring; sleep 100",
    "fork-away-holding-output": "(sleep 100 &); echo forked",
    "close-output-fork-away-and-exit": "(exec >&- 2>&- </dev/null; sleep 100 &); exit 0",
    "flood-output": "head -c 200000000 /dev/zero | tr '\\0' x",
    "flood-stderr": "head -c 200000000 /dev/zero | tr '\\0' x >&2",
}


def test_control_exec_procs_sees_a_running_command(light):
    """The leftover-process check finds a command while it runs."""
    name = "pr-ctl-procs"
    with Previews(light) as pv:
        pv.add(name)
        assert light.create(name, branch="plain").ok
        t = threading.Thread(target=lambda: light.sh(name, "sleep 3"))
        t.start()
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline and not seen:
            seen = exec_procs(light, name)
            time.sleep(0.05)
        t.join()
        assert seen, "the cgroup of a running exec was not found on the host"


@pytest.mark.parametrize("variant", list(HOSTILE_COMMANDS))
def test_agent_command_bounded(light, variant):
    """An exec asking for a 2 s timeout returns within the bound, its processes are gone from
    the host, and destroy returns, whatever the command does with its output."""
    name = f"pr-bound-{variant}"
    make_branch(light.repo, name)
    c = light.create(name)
    assert c.ok, c
    p = bbx(light.d, "env", "exec", name, "--timeout", "2", "--", "/bin/sh", "-c", HOSTILE_COMMANDS[variant],
            token=light.token, timeout=T_BOUND)
    deadline = time.monotonic() + 5  # processes killed at the end may take a moment to exit
    while (left := exec_procs(light, name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    d = light.root("env", "destroy", name, timeout=T_BOUND)
    light.assert_answers()
    assert not p.hung, f"exec --timeout 2 of {variant!r} had not returned after {T_BOUND} s"
    assert not left, f"{variant}: processes {left} of the exec outlived it on the host"
    assert len(p.out) <= 16 << 20, f"{variant}: {len(p.out)} bytes of output reached the agent"
    assert not d.hung and d.ok, f"destroy after {variant} did not return: {d}"


def test_destroy_while_exec_runs(light):
    """An agent command running (no timeout of its own) never holds what destroy needs: destroy
    returns, and the command goes with the environment."""
    name = make_branch(light.repo, "pr-bound-destroy-during-exec")
    assert light.create(name).ok
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "p", light.sh(name, "echo started; sleep 100", timeout=T_BOUND + 5)))
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not exec_procs(light, name):
        time.sleep(0.05)
    running = exec_procs(light, name)
    d = light.root("env", "destroy", name, timeout=T_BOUND)
    t.join()
    assert running, "control: the exec never ran"
    assert not d.hung and d.ok, f"destroy while an exec runs did not return: {d}"
    assert not exec_procs(light, name) and not [p for p in running if os.path.exists(f"/proc/{p}")], \
        "the exec's processes outlived destroy"


def exec_limits(proj, name):
    """(memory limit bytes, cpu quota us) of an exec's cgroup in name, read on the host."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("p", proj.sh(name, "sleep 2", timeout=T_EXEC)))
    t.start()
    found = None
    deadline = time.monotonic() + 20
    pats = [f"/sys/fs/cgroup/memory/branchbox/*/env-{name}/exec-*",
            f"/sys/fs/cgroup/branchbox/*/env-{name}/exec-*",
            f"/sys/fs/cgroup/unified/branchbox/*/env-{name}/exec-*"]
    while time.monotonic() < deadline and not found:
        for pat in pats:
            for g in glob.glob(pat):
                for mem, cpu in (("memory.limit_in_bytes", None), ("memory.max", "cpu.max")):
                    if os.path.exists(os.path.join(g, mem)):
                        found = (g, mem, cpu)
        time.sleep(0.05)
    mem = cpu = None
    if found:
        g, memf, cpuf = found
        mem = int(open(os.path.join(g, memf)).read().split()[0])
        if cpuf:
            cpu = open(os.path.join(g, cpuf)).read().split()[0]
            cpu = None if cpu == "max" else int(cpu)
        else:
            cg = g.replace("/memory/", "/cpu/")
            if os.path.exists(os.path.join(cg, "cpu.cfs_quota_us")):
                cpu = int(open(os.path.join(cg, "cpu.cfs_quota_us")).read())
    t.join(timeout=T_EXEC)
    assert found, f"no exec cgroup of {name} found on the host: {box.get('p')}"
    return mem, cpu


WIDEN = {
    "profile-memory": {"profile": "{cpu: 0.5, memory: 1G}"},
    "profile-cpu": {"profile": "{cpu: 2, memory: 192M}"},
    "ttl": {"ttl": "30d"},
    "budget-memory": {"budget": "{cpu_seconds: 1h, memory: 8G, disk: 1G, wall_time: 2h}"},
    "budget-cpu-seconds": {"budget": "{cpu_seconds: 100h, memory: 512M, disk: 1G, wall_time: 2h}"},
    "budget-disk": {"budget": "{cpu_seconds: 1h, memory: 512M, disk: 100G, wall_time: 2h}"},
    "budget-wall-time": {"budget": "{cpu_seconds: 1h, memory: 512M, disk: 1G, wall_time: 30d}"},
}


def leftovers(proj, name):
    return [p for p in (os.path.join(proj.d.state, k, name) for k in ("code", "logs", "tmp", "run/netns"))
            if os.path.lexists(p)] + ([proj.volume(name)] if os.path.lexists(proj.volume(name)) else [])


@pytest.mark.parametrize("variant", list(WIDEN))
def test_policy_widened_refused(light, variant):
    """A branch raising its preview profile, TTL or budget above production's is refused, and
    nothing of the environment is left."""
    name = make_branch(light.repo, f"pr-widen-{variant}",
                       config=light_config(preview=dict(LIGHT_PREVIEW, **WIDEN[variant])))
    with Previews(light) as pv:
        pv.add(name)
        c = light.create(name)
        assert not c.hung, c
        listed = name in light.names()
        effect = ""
        if c.ok and variant == "ttl":
            info = light.info(name) or {}
            ttl = info.get("expires_at", 0) - info.get("created_at", 0)
            effect = f"; it expires {ttl} s after creation (production: 7200)"
        elif c.ok and variant.startswith("profile-"):
            mem, cpu = exec_limits(light, name)
            effect = (f"; an exec in it gets memory {mem}, cpu quota {cpu} us "
                      f"(production's preview profile: {192 << 20}, 50000 us)")
        left = leftovers(light, name) if not c.ok else []
    assert c.rc != 0 and not listed, f"env create accepted a widened {variant}{effect}: {c}"
    assert not left, f"a refused create left {left}"


def test_policy_omitted_is_production(light):
    """A branch that drops `environments:` altogether would get the built-in defaults (256M,
    24h: wider than production's 192M, 2h). Refused, or production's values apply."""
    name = make_branch(light.repo, "pr-widen-omitted", config=light_config(preview=None))
    with Previews(light) as pv:
        pv.add(name)
        c = light.create(name)
        assert not c.hung, c
        if c.ok:
            info = light.info(name)
            ttl = info["expires_at"] - info["created_at"] if info.get("expires_at") else None
            mem, _ = exec_limits(light, name)
            assert ttl is not None and ttl <= 7200, \
                f"preview without environments: TTL {ttl} s > production's 7200 s"
            assert mem <= 192 << 20, f"preview without environments: memory {mem} > production's {192 << 20}"
        else:
            assert name not in light.names()


NARROW = {"profile-memory": ({"profile": "{cpu: 0.5, memory: 128M}"}, 128 << 20, None, None),
          "profile-cpu": ({"profile": "{cpu: 0.25, memory: 192M}"}, None, 25000, None),
          "ttl": ({"ttl": "30m"}, None, None, 1800)}


@pytest.mark.parametrize("variant", list(NARROW))
def test_policy_narrowed_applied(light, variant):
    """Narrowing is allowed and takes effect on the host (this is also the control of the
    widening cases: an accepted create does show up in env list)."""
    change, mem_want, cpu_want, ttl_want = NARROW[variant]
    name = make_branch(light.repo, f"pr-narrow-{variant}",
                       config=light_config(preview=dict(LIGHT_PREVIEW, **change)))
    with Previews(light) as pv:
        pv.add(name)
        c = light.create(name)
        assert c.ok, f"a narrowing branch was refused: {c}"
        assert name in light.names()
        info = light.info(name)
        mem, cpu = exec_limits(light, name)
        if mem_want:
            assert mem == mem_want, f"memory limit {mem}, want {mem_want}"
        if cpu_want:
            assert cpu == cpu_want, f"cpu quota {cpu}, want {cpu_want}"
        if ttl_want:
            assert info.get("expires_at") and info["expires_at"] - info["created_at"] <= ttl_want, info


# ---------------------------------------------------------------------------------------------
# Class 4 (config dir) and class 6: masking, on the PostgreSQL project

def rows(proj, name):
    p = proj.sh(name, "python3 -c " + shlex.quote(ROWS))
    assert not p.hung, p
    return p


CONFIG_DIR_VARIANTS = ["dir-symlink-in-branch", "dir-symlink-to-host", "dir-symlink-proc-self-root",
                       "file-symlink-in-branch"]


@pytest.mark.parametrize("variant", CONFIG_DIR_VARIANTS)
def test_config_dir_symlink(pg, scratch, variant):
    """.branchbox (or its config.yaml) is a symlink to a config without sanitize, in the branch
    or on the host. The config is never read through it: refused, or the rows are masked."""
    no_sanitize = pg_config(sanitize=False)
    host_cfg = os.path.join(scratch.victim, "cfg")
    files, links = {}, {}
    if variant == "dir-symlink-in-branch":
        files, links = {"cfg/config.yaml": no_sanitize}, {".branchbox": "cfg"}
    elif variant == "dir-symlink-to-host":
        links = {".branchbox": host_cfg}
    elif variant == "dir-symlink-proc-self-root":
        links = {".branchbox": "/proc/self/root" + host_cfg}
    else:
        files, links = {"cfg/config.yaml": no_sanitize}, {".branchbox/config.yaml": "../cfg/config.yaml"}
    remove = [".branchbox"] if variant.startswith("dir-") else [".branchbox/config.yaml"]
    name = make_branch(pg.repo, f"pr-cfg-{variant}", remove=remove, files=files, symlinks=links)
    seen = []
    with Previews(pg) as pv:
        pv.add(name)
        c = pg.create(name)
        seen.append(c.text)
        assert not c.hung, c
        if c.ok:
            r = rows(pg, name)
            seen.append(r.text)
            assert REAL not in r.text, f"config through {variant}: the preview holds unmasked rows: {r.out}"
            assert "masked.invalid" in r.out, f"control: the rows could not be read: {r}"
        pg.assert_answers()
    assert_host_unchanged(scratch, seen, f"config dir ({variant})")


SANITIZE_VARIANTS = {
    "deleted": lambda: pg_config(sanitize=False),
    "emptied": lambda: pg_config(sanitize=False) + "sanitize: []\n",
    "no-op": lambda: pg_config(sanitize_sql="SELECT 1"),
    "other-table": lambda: pg_config(sanitize_sql="CREATE TABLE IF NOT EXISTS decoy (x int)"),
}


@pytest.mark.parametrize("variant", list(SANITIZE_VARIANTS) + ["upsun-config-without-sanitize"])
def test_sanitize_dropped(pg, variant):
    """A branch whose config drops or defuses sanitize: production's sanitize still runs, so the
    preview's rows are masked (or the create is refused)."""
    if variant == "upsun-config-without-sanitize":
        name = make_branch(pg.repo, f"pr-san-{variant}", remove=[".branchbox"],
                           files={".upsun/config.yaml": pg_config(sanitize=False)})
    else:
        name = make_branch(pg.repo, f"pr-san-{variant}", config=SANITIZE_VARIANTS[variant]())
    with Previews(pg) as pv:
        pv.add(name)
        c = pg.create(name)
        assert not c.hung, c
        if c.ok:
            r = rows(pg, name)
            assert REAL not in r.text, f"sanitize {variant}: the agent reads production's rows: {r.out}"
            assert "masked.invalid" in r.out, f"control: the rows could not be read: {r}"


@pytest.mark.parametrize("via", ["database-url", "relationships"])
def test_build_hook_reads_db(pg, via):
    """The build hook runs before sanitize has finished (today: while the services start). It
    must get no services and no credentials; whatever it saw, it never saw a real row."""
    hooks = dict(PG_HOOKS, build=f"python3 steal.py {via} /app/stolen-build.txt")
    name = make_branch(pg.repo, f"pr-buildread-{via}", config=pg_config(hooks=hooks))
    seen = []
    with Previews(pg) as pv:
        pv.add(name)
        c = pg.create(name)
        assert not c.hung, c
        seen += [c.text, pg.logs(name, "deploy").text]
        if c.ok:
            p = pg.sh(name, "cat /app/stolen-build.txt")
            assert not p.hung, p
            seen.append(p.text)
    leaked = [s for s in seen if REAL in s]
    assert not leaked, f"the build hook ({via}) read unmasked rows:\n" + "\n---\n".join(s[-800:] for s in leaked)


@pytest.mark.parametrize("via", ["database-url", "relationships"])
def test_deploy_hook_reads_db(pg, via):
    """The deploy hook runs after sanitize: it reads the database, and sees only masked rows."""
    hooks = dict(PG_HOOKS, deploy=f"python3 seed.py && python3 steal.py {via} /app/uploads/stolen-deploy.txt")
    name = make_branch(pg.repo, f"pr-deployread-{via}", config=pg_config(hooks=hooks))
    with Previews(pg) as pv:
        pv.add(name)
        c = pg.create(name)
        assert c.ok, f"a deploy hook that reads the database made the create fail: {c}"
        p = pg.sh(name, "cat /app/uploads/stolen-deploy.txt")
        logs = pg.logs(name, "deploy")
    seen = p.text + logs.text + c.text
    assert REAL not in seen, f"the deploy hook ({via}) read unmasked rows: {p.out}"
    assert "masked.invalid" in p.out, f"control: the deploy hook read no rows at all: {p}"


def test_nothing_answers_before_ready(pg):
    """While a preview is created (slow hooks keep that going for seconds), the agent polls exec,
    logs and the preview proxy: nothing answers with data until the environment is ready.
    Afterwards the same calls do answer (the control)."""
    hooks = {"build": "python3 -m py_compile app.py && echo build-output && sleep 1",
             "deploy": "python3 seed.py && echo deploy-output && sleep 1",
             "post_deploy": "echo post-deploy-output && sleep 2"}
    name = make_branch(pg.repo, "pr-notready", config=pg_config(hooks=hooks))
    tok = pg.token
    probes = {
        "exec": lambda: http_call(pg.d, "POST", f"/v1/environments/{name}/exec", tok,
                                  {"command": ["python3", "-c", ROWS], "timeout": 20}),
        "logs-deploy": lambda: http_call(pg.d, "GET", f"/v1/environments/{name}/logs?process=deploy", tok),
        "logs-app": lambda: http_call(pg.d, "GET", f"/v1/environments/{name}/logs", tok),
        "proxy": lambda: http_call(pg.d, "GET", f"/preview/{name}/users", tok),
    }

    answers, done = [], threading.Event()

    def poll():
        while not done.is_set():
            for what, call in probes.items():
                before = pg.info(name)
                status, body = call()
                after = pg.info(name)
                answers.append((what, before and before["state"], status, body, after and after["state"]))
            time.sleep(0.1)

    with Previews(pg) as pv:
        pv.add(name)
        t = threading.Thread(target=poll)
        t.start()
        try:
            c = pg.create(name)
        finally:
            done.set()
            t.join(timeout=120)
        assert c.ok, f"create failed: {c}"
        # Control: once ready, every probe answers with data.
        after = {what: call() for what, call in probes.items()}
    for what, (status, body) in after.items():
        assert status == 200, f"control: {what} does not answer once ready: {status} {body[:300]}"
    assert "masked.invalid" in after["proxy"][1] and "masked.invalid" in after["exec"][1], after
    assert any(b not in (None, "ready") and a not in (None, "ready") for _, b, _, _, a in answers), \
        "the poller never ran while the environment was being created"
    early = {}
    for w, b, s, body, a in answers:
        if b != "ready" and a != "ready" and s is not None and 200 <= s < 300:
            early.setdefault((w, s, body[:160]), b)
    assert not early, "answered with data before ready:\n" + "\n".join(
        f"  {w} (state {st}): HTTP {s}: {b!r}" for (w, s, b), st in early.items())
    assert not [x for x in answers if REAL in (x[3] or "")], "an answer held unmasked rows"


# ---------------------------------------------------------------------------------------------
# Class 5: service data and log dirs (simulating a compromised service process)

SERVICE_VARIANTS = {
    # PostgreSQL: services/db/data/branchbox.conf is rewritten, services/db/run made, at every start.
    "pg-conf-symlink": ("services/db/data/branchbox.conf", "symlink", "a.txt"),
    "pg-conf-fifo": ("services/db/data/branchbox.conf", "fifo", None),
    "pg-conf-hardlink": ("services/db/data/branchbox.conf", "hardlink", None),
    "pg-conf-tmp-symlink": ("services/db/data/.branchbox.conf.tmp.{pid}", "symlink", "a.txt"),
    "pg-run-symlink": ("services/db/run", "symlink", ""),
    "pg-run-fifo": ("services/db/run", "fifo", None),
    "pg-data-symlink": ("services/db/data", "symlink", ""),
    # Redis: services/cache/redis.conf and services/cache/data.
    "redis-conf-symlink": ("services/cache/redis.conf", "symlink", "a.txt"),
    "redis-data-symlink": ("services/cache/data", "symlink", ""),
    # The daemon's log of the service (outside the volume; opened for append at every start).
    "log-symlink": ("@logs/db.log", "symlink", "a.txt"),
}


@pytest.mark.parametrize("variant", list(SERVICE_VARIANTS))
def test_service_dir_planted(pg, scratch, variant):
    """A service process is compromised (simulated: the test plants from the host what it could
    create in its own data dir, as the service's uid). The environment is then stopped and
    started: the daemon's writes must not land outside, and nothing may hang."""
    rel, kind, target = SERVICE_VARIANTS[variant]
    name = f"pr-svc-{variant}"
    make_branch(pg.repo, name)
    seen = []
    with Previews(pg) as pv:
        pv.add(name)
        c = pg.create(name)
        assert c.ok, f"a plain preview failed: {c}"
        if rel.startswith("@logs/"):
            path = os.path.join(pg.d.state, "logs", name, rel[len("@logs/"):])
        else:
            path = os.path.join(pg.volume(name), rel.replace("{pid}", str(pg.d.proc.pid)))
        if kind == "hardlink":
            # A root-owned file the service cannot see (the volume's root; a hardlink cannot
            # leave the subvolume), linked by the service in place of its config file.
            victim = os.path.join(pg.volume(name), "bbx-hardlink-victim")
            with open(victim, "w") as f:
                f.write("root's file, not the service's\n")
            os.chmod(victim, 0o644)
            scratch.watch(victim)
            os.unlink(path)
            os.link(victim, path)
        elif kind == "symlink":
            if os.path.isdir(path) and not os.path.islink(path):
                os.rename(path, path + ".moved")
            plant(path, "symlink", os.path.join(scratch.victim, target) if target else scratch.victim)
        else:
            plant(path, kind)
        for p in pg.restart(name):
            assert not p.hung, f"restart with {variant} planted did not return: {p}"
            seen.append(p.text)
        run_probe(pg, name, scratch, seen)
        pg.assert_answers()
        # Checked before destroy removes the volume (and the hardlink victim with it).
        assert_host_unchanged(scratch, seen, f"service dir planted ({variant})")
