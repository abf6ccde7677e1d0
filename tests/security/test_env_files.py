# SPDX-License-Identifier: MIT
"""An environment's files, code diff, config and services, on a real preview of examples/todo.

The code tree and the volume are the agent's to write (DESIGN.md 2a): each file row
(environment.file_read, environment.file_list, environment.file_write) gets a table of hostile
paths (symlinks to a host file and to a host directory, climbing symlinks, '..' forms, absolute
paths, a FIFO, a device node, a hard link to a host file on the same file system, a path through
a symlinked directory, a very long path, a NUL byte), each refused with a clear error while a
root-owned victim tree and /etc/passwd keep their content, mode, owner and mtime, and nothing
the host holds (the victim's marker) appears in any answer. A directory swapped for a symlink
while writes run never redirects one. Every row also has a positive test, and answers a token
whose scope does not include the environment exactly like an environment that does not exist.
Positive control: the same victim check, pointed at a write the test makes through the symlink
itself, sees the change.
"""
import base64
import glob
import hashlib
import http.client
import json
import os
import secrets
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import urllib.parse

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from conftest import Daemon  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "todo")
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
CLIMB = "../" * 40
PREVIEW = "pr-files"
T = 30


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, env=GIT_ENV,
                          capture_output=True, text=True).stdout.strip()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=T)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(T)
        self.sock.connect(self.unix_path)


def api(d, method, path, token=None, body=None, query=None):
    """(status, parsed JSON or raw text) over the daemon's HTTP port (root: the unix socket)."""
    if query:
        path += "?" + urllib.parse.urlencode(query)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=T)
    else:
        conn = UnixHTTPConnection(d.socket)
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read().decode(errors="replace")
    finally:
        conn.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw


def snapshot(paths):
    """Owner, mode, mtime and content hash of every entry below each path (links not followed)."""
    out = {}
    for top in paths:
        entries = [top]
        if os.path.isdir(top) and not os.path.islink(top):
            for base, dirs, files in os.walk(top):
                entries += [os.path.join(base, n) for n in dirs + files]
        for p in entries:
            st = os.lstat(p)
            h = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            out[p] = (st.st_uid, st.st_gid, st.st_mode, st.st_mtime_ns, h)
    return out


class Env:
    pass


@pytest.fixture(scope="module")
def env():
    if os.geteuid() != 0:
        pytest.fail("needs root: the daemon makes namespaces, cgroups and volumes")
    e = Env()
    e.tmp = tempfile.mkdtemp(prefix="bbx-files-")
    # The host's side: a root-owned tree an agent must never read or change.
    e.marker = "victim-" + secrets.token_hex(8)
    e.victim = os.path.join(e.tmp, "victim")
    os.makedirs(os.path.join(e.victim, "sub"))
    with open(os.path.join(e.victim, "secret"), "w") as f:
        f.write(e.marker + "\n")
    with open(os.path.join(e.victim, "sub", "deep"), "w") as f:
        f.write(e.marker + " deep\n")
    e.repo = os.path.join(e.tmp, "repo")
    subprocess.run([os.path.join(EXAMPLE, "make-repo.sh"), e.repo], check=True, capture_output=True)
    # The agent's branch: symlinks the checkout writes as symlinks.
    git(e.repo, "checkout", "-q", "-b", PREVIEW)
    links = {
        "link-passwd": "/etc/passwd",
        "link-victim": os.path.join(e.victim, "secret"),
        "link-victim-dir": e.victim,
        "link-climb": CLIMB + "etc",
        "link-inside": "app.py",
        "linkdir-inside": "tests",
        "link-proc": "/proc/self/root/etc",
    }
    for name, target in links.items():
        os.symlink(target, os.path.join(e.repo, name))
    git(e.repo, "add", "-A")
    git(e.repo, "commit", "-q", "-m", "hostile links")
    git(e.repo, "checkout", "-q", "main")
    e.d = Daemon(e.tmp, e.repo).start()
    try:
        e.d.cli("deploy", timeout=600)
        info = json.loads(e.d.cli("env", "create", PREVIEW, "--json", timeout=600).stdout)
        assert info["state"] == "ready", info
        e.commit = info["commit"]
        e.code = os.path.join(e.d.state, "code", PREVIEW, e.commit)
        assert os.path.isfile(os.path.join(e.code, "app.py")), e.code
        e.agent = json.loads(e.d.cli("token", "create", "--agent", "bot", "--env", "pr-*", "--ttl", "1h", "--verbs",
                                     "env:read,env:exec,env:write", "--json").stdout)["token"]
        e.reader = json.loads(e.d.cli("token", "create", "--agent", "ro", "--env", "pr-*", "--ttl", "1h", "--verbs",
                                      "env:read", "--json").stdout)["token"]
        e.other = json.loads(e.d.cli("token", "create", "--agent", "other", "--env", "zz-*", "--ttl", "1h", "--verbs",
                                     "env:read,env:exec,env:write", "--json").stdout)["token"]
        # What the agent (or its build hook) can make in its trees: a FIFO, device nodes and a
        # hard link to a host file on the same file system, made here by the test in its place.
        os.mkfifo(os.path.join(e.code, "fifo"))
        os.mknod(os.path.join(e.code, "devnull"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(os.path.join(e.code, "devzero"), 0o666 | stat.S_IFCHR, os.makedev(1, 5))
        e.same_fs = os.stat(e.code).st_dev == os.stat(e.victim).st_dev
        assert e.same_fs, "the state dir and the victim are on one file system (both in tmp)"
        os.link(os.path.join(e.victim, "secret"), os.path.join(e.code, "hardlink"))
        # In the volume, through the application itself.
        r = exec_(e, "sh", "-c", f"ln -s {e.victim}/secret /app/uploads/ln && ln -s / /app/uploads/lnroot && "
                  "mkfifo /app/uploads/fifo && mkdir -p /app/uploads/dir && echo vol > /app/uploads/dir/f")
        assert r["exit_code"] == 0, r
        yield e
    finally:
        e.d.stop()
        try:
            e.d.down()
        finally:
            shutil.rmtree(e.tmp, ignore_errors=True)


def exec_(e, *argv):
    s, body = api(e.d, "POST", f"/v1/environments/{PREVIEW}/exec", token=e.agent,
                  body={"command": list(argv), "timeout": 60})
    assert s == 200, body
    return body


def read(e, path, root=None, token=None, name=PREVIEW, **kw):
    q = {"path": path, **kw}
    if root:
        q["root"] = root
    return api(e.d, "GET", f"/v1/environments/{name}/file", token=token or e.agent, query=q)


def listing(e, path, root=None, token=None, name=PREVIEW):
    q = {"path": path}
    if root:
        q["root"] = root
    return api(e.d, "GET", f"/v1/environments/{name}/files", token=token or e.agent, query=q)


def write(e, path, content, root=None, token=None, name=PREVIEW, **kw):
    b = {"path": path, "content": content, **kw}
    if root:
        b["root"] = root
    return api(e.d, "PUT", f"/v1/environments/{name}/file", token=token or e.agent, body=b)


# ---- hostile paths -------------------------------------------------------------------------

def hostile_paths(e):
    """(path, root, why) every file row must refuse."""
    return [
        ("link-passwd", None, "symlink to /etc/passwd"),
        ("link-victim", None, "absolute symlink to a host file"),
        ("link-victim-dir/secret", None, "through a symlink to a host directory"),
        ("link-victim-dir/sub/deep", None, "through a symlink to a host directory, deeper"),
        ("link-climb/passwd", None, "through a climbing relative symlink"),
        ("link-proc/passwd", None, "through a symlink to /proc/self/root"),
        ("link-inside", None, "a symlink even to a file inside"),
        ("linkdir-inside/test_app.py", None, "through a symlink even to a directory inside"),
        ("../../../../etc/passwd", None, "'..' out of the tree"),
        (CLIMB + "etc/passwd", None, "many '..'"),
        ("tests/../../victim/secret", None, "'..' after a real directory"),
        ("/etc/passwd", None, "an absolute path"),
        (os.path.join(e.victim, "secret"), None, "an absolute path to the victim"),
        ("fifo", None, "a FIFO"),
        ("devnull", None, "a device node"),
        ("devzero", None, "an endless device node"),
        ("hardlink", None, "a hard link to a host file"),
        ("a/" * 2100 + "x", None, "a very long path"),
        ("", None, "an empty path"),
        ("app.py/", None, "a trailing slash"),
        ("web/uploads/ln", "volume", "a symlink the application made in its volume"),
        ("web/uploads/lnroot/etc/passwd", "volume", "through a symlink to / in the volume"),
        ("web/uploads/fifo", "volume", "a FIFO the application made in its volume"),
        ("../../services/db/PG_VERSION", "volume", "service data, outside the mounts"),
    ]


def assert_refused(e, status, body, what):
    assert status == 400, f"{what}: {status} {body}"
    assert isinstance(body, dict) and body["error"]["code"] == "invalid", f"{what}: {body}"
    msg = body["error"]["message"]
    assert e.marker not in msg and "root:x:0:0" not in msg, what
    return msg


def test_file_read_refuses_hostile_paths(env):
    e = env
    before = snapshot([e.victim, "/etc/passwd"])
    for path, root, why in hostile_paths(e):
        s, body = read(e, path, root)
        msg = assert_refused(e, s, body, f"read {why}")
        assert msg, why
    # NUL cannot be put in a query: through the body.
    s, body = api(e.d, "GET", f"/v1/environments/{PREVIEW}/file", token=e.agent,
                  body={"path": "app.py\u0000/../../etc/passwd"})
    assert "NUL" in assert_refused(e, s, body, "read with a NUL")
    assert snapshot([e.victim, "/etc/passwd"]) == before
    # The clear errors a caller acts on.
    assert "symbolic link" in read(e, "link-passwd")[1]["error"]["message"]
    assert "'..'" in read(e, "../x")[1]["error"]["message"]
    assert "absolute" in read(e, "/etc/passwd")[1]["error"]["message"]
    assert "not a regular file" in read(e, "fifo")[1]["error"]["message"]
    assert "hard link" in read(e, "hardlink")[1]["error"]["message"]


def test_file_list_refuses_hostile_paths(env):
    e = env
    before = snapshot([e.victim, "/etc/passwd"])
    for path, root, why in [
        ("link-victim-dir", None, "a symlink to a host directory"),
        ("link-victim-dir/sub", None, "through a symlink to a host directory"),
        ("link-climb", None, "a climbing symlink"),
        ("link-proc", None, "a symlink to /proc/self/root"),
        ("linkdir-inside", None, "a symlink to a directory inside"),
        ("..", None, "'..'"),
        (CLIMB + "etc", None, "many '..'"),
        ("tests/../..", None, "'..' after a real directory"),
        ("/", None, "/"),
        ("/etc", None, "an absolute path"),
        ("app.py", None, "a file"),
        ("fifo", None, "a FIFO"),
        ("a/" * 2100 + "x", None, "a very long path"),
        ("web/uploads/lnroot", "volume", "a symlink to / in the volume"),
        ("..", "volume", "'..' out of the mounts"),
    ]:
        s, body = listing(e, path, root)
        assert_refused(e, s, body, f"list {why}")
        assert "passwd" not in json.dumps(body), why
    assert snapshot([e.victim, "/etc/passwd"]) == before


def test_file_write_refuses_hostile_paths(env):
    e = env
    before = snapshot([e.victim, "/etc/passwd"])
    for path, root, why in hostile_paths(e) + [
        ("link-victim-dir/new", None, "a new file through a symlinked directory"),
        ("link-victim-dir/made/new", None, "new directories through a symlinked directory"),
        ("linkdir-inside/new", None, "a new file through a symlink to a directory inside"),
        ("tests", None, "a directory"),
        ("web/uploads/ln/x", "volume", "through a symlink to a file in the volume"),
    ]:
        s, body = write(e, path, "owned\n", root)
        assert_refused(e, s, body, f"write {why}")
    s, body = write(e, "app.py\u0000x", "owned\n")
    assert "NUL" in assert_refused(e, s, body, "write with a NUL")
    after = snapshot([e.victim, "/etc/passwd"])
    assert after == before
    # Nothing it refused was left behind in the tree either.
    assert stat.S_ISFIFO(os.lstat(os.path.join(e.code, "fifo")).st_mode)
    assert os.readlink(os.path.join(e.code, "link-victim")) == os.path.join(e.victim, "secret")
    assert not [n for n in os.listdir(e.code) if n.startswith(".bbx-write-")]


def test_write_races_a_swapped_directory(env):
    """The agent swaps a directory for a symlink to the host while writes go on: every write
    lands in the tree or is refused, none goes through the link."""
    e = env
    before = snapshot([e.victim])
    real, alias = os.path.join(e.code, "race-real"), os.path.join(e.code, "race")
    os.makedirs(real)
    app_uid = os.stat(os.path.join(e.code, "app.py")).st_uid
    os.chown(real, app_uid, app_uid)  # the agent's own directory
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            try:
                os.rename(real, alias)        # a real directory at "race"
                os.rename(alias, real)
                os.symlink(e.victim, alias)   # a symlink to the host at "race"
                os.unlink(alias)
            except OSError:
                pass

    t = threading.Thread(target=swap)
    t.start()
    try:
        answers = [write(e, "race/x", "raced\n", parents=False)[0] for _ in range(150)]
    finally:
        stop.set()
        t.join()
    assert set(answers) <= {200, 400}, answers
    assert snapshot([e.victim]) == before
    assert not os.path.exists(os.path.join(e.victim, "x"))


def test_control_victim_check_sees_a_write_through_the_link(env):
    """Positive control: a write through the same symlink, done the unsafe way by the test
    (as a daemon that followed it would), changes the snapshot."""
    e = env
    scratch = os.path.join(e.tmp, "control")
    shutil.copytree(e.victim, scratch)
    link = os.path.join(e.tmp, "control-link")
    os.symlink(scratch, link)
    before = snapshot([scratch])
    with open(os.path.join(link, "secret"), "a") as f:  # follows the link
        f.write("changed\n")
    assert snapshot([scratch]) != before


# ---- what works ----------------------------------------------------------------------------

def test_file_read(env):
    e = env
    s, body = read(e, "app.py")
    assert s == 200, body
    with open(os.path.join(EXAMPLE, "app.py")) as f:
        want = f.read()
    assert body["encoding"] == "utf-8" and body["content"] == want
    assert body["size"] == len(want.encode()) and not body["truncated"]
    s, body = read(e, "app.py", offset=10, limit=20)
    assert s == 200 and body["content"] == want[10:30] and body["truncated"] and body["bytes"] == 20
    s, body = read(e, "web/uploads/dir/f", "volume")
    assert s == 200 and body["content"] == "vol\n", body
    s, body = read(e, "nosuch")
    assert s == 400 and "does not exist" in body["error"]["message"]


def test_file_list(env):
    e = env
    s, body = listing(e, "")
    assert s == 200, body
    by = {x["name"]: x for x in body["entries"]}
    assert by["app.py"]["type"] == "file" and by["app.py"]["size"] > 0
    assert by[".branchbox"]["type"] == "directory"
    assert by["link-passwd"]["type"] == "symlink"
    assert by["fifo"]["type"] == "fifo" and by["devnull"]["type"] == "char"
    s, body = listing(e, "web/uploads", "volume")
    assert s == 200, body
    assert {x["name"]: x["type"] for x in body["entries"]}["dir"] == "directory"


def test_file_write_and_the_sandbox_sees_it(env):
    e = env
    app_uid = os.stat(os.path.join(e.code, "app.py")).st_uid
    assert app_uid != 0
    s, body = write(e, "notes/new.txt", "hello from the agent\n")
    assert s == 200 and body["created"] and body["bytes"] == 21, body
    st = os.stat(os.path.join(e.code, "notes", "new.txt"))
    assert (st.st_uid, st.st_gid) == (app_uid, app_uid) and stat.S_IMODE(st.st_mode) == 0o644
    assert os.stat(os.path.join(e.code, "notes")).st_uid == app_uid
    assert exec_(e, "cat", "/app/notes/new.txt")["output"] == "hello from the agent\n"
    blob = bytes(range(256))
    s, body = write(e, "notes/blob.bin", base64.b64encode(blob).decode(), encoding="base64", mode=0o600)
    assert s == 200, body
    s, body = read(e, "notes/blob.bin")
    assert body["encoding"] == "base64" and base64.b64decode(body["content"]) == blob
    # The volume: stored as the owner the application sees as its own.
    s, body = write(e, "web/uploads/from-api.txt", "volume write\n", "volume")
    assert s == 200, body
    assert exec_(e, "cat", "/app/uploads/from-api.txt")["output"] == "volume write\n"
    r = exec_(e, "sh", "-c", "echo more >> /app/uploads/from-api.txt && echo ok")
    assert r["output"].strip() == "ok", r
    # The daemon's own skeleton above the mounts is not the application's to write in.
    s, body = write(e, "web/planted", "x\n", "volume")
    assert s == 403 and "could not write there" in body["error"]["message"], body
    assert not [n for _, _, files in os.walk(e.d.state) for n in files if n == "planted"]
    # Too large for one call.
    s, body = write(e, "big", "x" * ((1 << 20) + 1))
    assert s == 413, body


def test_file_write_needs_env_write(env):
    e = env
    s, body = write(e, "notes/ro.txt", "x", token=e.reader)
    assert s == 403, body
    assert not os.path.exists(os.path.join(e.code, "notes", "ro.txt"))


def test_diff(env):
    e = env
    with open(os.path.join(EXAMPLE, "app.py")) as f:
        app = f.read()
    s, body = write(e, "app.py", app + "# changed by the agent\n")
    assert s == 200, body
    s, body = write(e, "notes/diffed.txt", "one\ntwo\n")
    assert s == 200, body
    s, body = api(e.d, "GET", f"/v1/environments/{PREVIEW}/diff", token=e.agent)
    assert s == 200, body
    assert body["base"] == e.commit
    files = {f["path"]: f for f in body["files"]}
    assert files["app.py"]["status"] == "M" and files["app.py"]["additions"] == 1
    assert files["app.py"]["deletions"] == 0
    assert files["notes/diffed.txt"]["status"] == "A" and files["notes/diffed.txt"]["additions"] == 2
    assert "link-passwd" not in files  # committed: unchanged
    assert "+# changed by the agent" in body["patch"] and not body["patch_truncated"]
    assert e.marker not in json.dumps(body) and "root:x:0:0" not in json.dumps(body)
    s, body = api(e.d, "GET", f"/v1/environments/{PREVIEW}/diff", token=e.agent,
                  query={"against": "production"})
    assert s == 200, body
    files = {f["path"]: f for f in body["files"]}
    assert files["link-passwd"]["status"] == "A" and "app.py" in files
    s, body = api(e.d, "GET", f"/v1/environments/{PREVIEW}/diff", token=e.agent,
                  query={"max_patch": 10})
    assert s == 200 and body["patch_truncated"] and body["patch"] == "" and body["files"]


def secrets_of(e):
    db = sqlite3.connect(os.path.join(e.d.state, "state.db"), timeout=30)
    rows = db.execute("SELECT secrets_json FROM environments").fetchall()
    db.close()
    pw = []
    for (s,) in rows:
        pw += list(json.loads(s or "{}").values())
    assert pw, "the environments have service passwords to look for"
    return pw


def test_config_read(env):
    e = env
    s, body = api(e.d, "GET", f"/v1/environments/{PREVIEW}/config", token=e.agent)
    assert s == 200, body
    cfg = body["config"]
    assert "web" in cfg["applications"] and cfg["services"]["db"]["kind"] == "postgresql"
    text = json.dumps(body)
    for pw in secrets_of(e):
        assert pw not in text


def test_services_list(env):
    e = env
    s, body = api(e.d, "GET", f"/v1/environments/{PREVIEW}/services", token=e.agent)
    assert s == 200, body
    svcs = {x["name"]: x for x in body["services"]}
    assert svcs["db"]["type"] == "postgresql" and svcs["db"]["version"] == "15"
    assert svcs["db"]["state"] == "running" and svcs["cache"]["type"] == "redis"
    assert body["applications"][0]["name"] == "web"
    assert body["applications"][0]["relationships"] == {"database": "db", "cache": "cache"}
    text = json.dumps(body)
    for pw in secrets_of(e):
        assert pw not in text


# ---- invisibility --------------------------------------------------------------------------

ROWS = [
    ("GET", "file", {"path": "app.py"}, None),
    ("GET", "files", {"path": ""}, None),
    ("PUT", "file", None, {"path": "notes/x", "content": "x"}),
    ("GET", "diff", None, None),
    ("GET", "config", None, None),
    ("GET", "services", None, None),
]


@pytest.mark.parametrize("method,tail,query,body", ROWS, ids=[r[1] + "-" + r[0] for r in ROWS])
def test_out_of_scope_is_not_found(env, method, tail, query, body):
    e = env

    def ask(name, token):
        return api(e.d, method, f"/v1/environments/{name}/{tail}", token=token, query=query,
                   body=body)

    # The row works for a token that can see the preview...
    assert ask(PREVIEW, e.agent)[0] == 200
    # ...and for one that cannot, it is exactly an environment that does not exist.
    out = ask(PREVIEW, e.other)
    absent = ask("zz-nope", e.other)
    assert out[0] == 404 and absent[0] == 404, (out, absent)
    assert json.dumps(out[1]).replace(PREVIEW, "NAME") == json.dumps(absent[1]).replace("zz-nope", "NAME")
    # Production does not exist for an agent.
    prod = ask("main", e.agent)
    missing = ask("pr-nope", e.agent)
    assert prod[0] == 404 and missing[0] == 404
    assert json.dumps(prod[1]).replace("main", "NAME") == json.dumps(missing[1]).replace("pr-nope", "NAME")
    # Root sees production (and writes none of its files: a deploy changes them).
    s, answer = ask("main", None)
    if method == "PUT":
        assert s == 403 and "production" in answer["error"]["message"], answer
        assert not glob.glob(os.path.join(e.d.state, "code", "main", "*", "notes"))
    else:
        assert s == 200, answer


def audit_since(e, seq):
    db = sqlite3.connect(os.path.join(e.d.state, "state.db"), timeout=30)
    rows = db.execute("SELECT seq, action, resource, decision, outcome, interface FROM audit "
                      "WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
    db.close()
    return rows


def last_seq(e):
    db = sqlite3.connect(os.path.join(e.d.state, "state.db"), timeout=30)
    (seq,) = db.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()
    db.close()
    return seq


def test_every_call_is_audited(env):
    """One record per call, allowed, refused or invisible; a write's intent before it acts."""
    e = env
    res = f"environment:{PREVIEW}"
    for (method, tail, query, body), action in zip(ROWS, ["environment.file_read", "environment.file_list",
                                                          "environment.file_write", "environment.diff",
                                                          "config.read", "services.list"]):
        seq = last_seq(e)
        assert api(e.d, method, f"/v1/environments/{PREVIEW}/{tail}", token=e.agent, query=query,
                   body=body)[0] == 200
        rows = [(r[1], r[2], r[3], r[4]) for r in audit_since(e, seq)]
        want = [(action, res, "allow", "200")]
        if action == "environment.file_write":
            want = [(action, res, "allow", "intent")] + want
        assert rows == want, (action, rows)
        seq = last_seq(e)
        api(e.d, method, f"/v1/environments/{PREVIEW}/{tail}", token=e.other, query=query, body=body)
        assert [(r[1], r[3], r[4]) for r in audit_since(e, seq)] == [(action, "deny", "404")], action
    seq = last_seq(e)
    assert read(e, "link-passwd")[0] == 400
    assert [(r[1], r[3], r[4]) for r in audit_since(e, seq)] == [("environment.file_read", "allow", "400")]


# ---- the CLI -------------------------------------------------------------------------------

def cli(e, *args, input=None, check=True):
    from conftest import run
    return run(*args, env={"BRANCHBOX_URL": e.d.url, "BRANCHBOX_TOKEN": e.agent}, input=input,
               check=check, timeout=T)


def test_cli_verbs(env):
    e = env
    with open(os.path.join(EXAMPLE, "app.py")) as f:
        app = f.read()
    assert cli(e, "env", "cat", PREVIEW, "README.md").stdout.startswith("#")
    p = cli(e, "env", "cat", PREVIEW, "app.py", "--offset", "0", "--limit", "5")
    assert p.stdout == app[:5] and "continue with --offset 5" in p.stderr
    assert json.loads(cli(e, "env", "cat", PREVIEW, "app.py", "--json").stdout)["encoding"] == "utf-8"
    out = cli(e, "env", "files", PREVIEW).stdout
    assert any(l.split()[-1] == "app.py" and l.startswith("file") for l in out.splitlines())
    listed = json.loads(cli(e, "env", "files", PREVIEW, "web/uploads", "--root", "volume", "--json").stdout)
    assert "dir" in [x["name"] for x in listed["entries"]]
    assert cli(e, "env", "write", PREVIEW, "cli/written.txt", input="from the cli\n").stdout.startswith("created")
    assert cli(e, "env", "cat", PREVIEW, "cli/written.txt").stdout == "from the cli\n"
    p = cli(e, "env", "write", PREVIEW, "link-passwd", input="x", check=False)
    assert p.returncode != 0 and "symbolic link" in p.stderr
    p = cli(e, "env", "write", PREVIEW, "cli/mode.sh", "--mode", "0755", input="#!/bin/sh\n")
    assert stat.S_IMODE(os.stat(os.path.join(e.code, "cli", "mode.sh")).st_mode) == 0o755
    d = json.loads(cli(e, "env", "diff", PREVIEW, "--json").stdout)
    assert "cli/written.txt" in [f["path"] for f in d["files"]]
    assert "A cli/written.txt" in cli(e, "env", "diff", PREVIEW).stdout
    assert json.loads(cli(e, "env", "config", PREVIEW).stdout)["services"]["db"]["kind"] == "postgresql"
    assert "postgresql" in cli(e, "env", "services", PREVIEW).stdout
    for c in ("files", "cat", "write", "diff", "config", "services"):
        assert "Usage: branchbox env" in cli(e, "env", c, "--help").stdout, c
    # Out of scope, production: not found, like any name that does not exist.
    p = cli(e, "env", "cat", "main", "app.py", check=False)
    assert p.returncode != 0 and "environment 'main' not found" in p.stderr


def test_zz_stopped_environment_answers_not_ready(env):
    """Last (it stops the preview): files and diff answer what exec answers before ready;
    config and services still answer, every process stopped."""
    e = env
    e.d.cli("env", "stop", PREVIEW, timeout=120)
    want = f"environment '{PREVIEW}' is not ready"
    for s, body in (read(e, "app.py"), listing(e, ""), write(e, "notes/late", "x"),
                    api(e.d, "GET", f"/v1/environments/{PREVIEW}/diff", token=e.agent),
                    api(e.d, "POST", f"/v1/environments/{PREVIEW}/exec", token=e.agent,
                        body={"command": ["true"]})):
        assert s == 409 and body["error"]["message"] == want, (s, body)
    assert not os.path.exists(os.path.join(e.code, "notes", "late"))
    s, body = api(e.d, "GET", f"/v1/environments/{PREVIEW}/services", token=e.agent)
    assert s == 200 and {x["state"] for x in body["services"] + body["applications"]} == {"stopped"}, body
    s, body = api(e.d, "GET", f"/v1/environments/{PREVIEW}/config", token=e.agent)
    assert s == 200 and "web" in body["config"]["applications"], body
