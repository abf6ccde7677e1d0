"""Production and previews of the example project, with real PostgreSQL, Redis and sandboxes."""
import glob
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, ROOT, Daemon, run

EXAMPLE = os.path.join(ROOT, "examples", "todo")
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self.path)


def call(d, method, path, body=None, host=None):
    conn = UnixHTTPConnection(d.socket)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if host:
        headers["Host"] = host
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, env=GIT_ENV, capture_output=True,
                          text=True).stdout


def branch_with_config(repo, branch, edit):
    """Create branch from main with .branchbox/config.yaml changed by edit(text) -> text."""
    wt = tempfile.mkdtemp(prefix="bbx-wt-")
    try:
        git(repo, "worktree", "add", "-q", "-b", branch, wt, "main")
        path = os.path.join(wt, ".branchbox", "config.yaml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(edit(text))
        git(wt, "commit", "-q", "-am", f"config for {branch}")
    finally:
        git(repo, "worktree", "remove", "--force", wt)
        shutil.rmtree(wt, ignore_errors=True)


def env_exec(d, name, *cmd, check=True):
    p = d.cli("env", "exec", name, "--", *cmd, check=False, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"exec in {name} {cmd} exited {p.returncode}: {p.stdout}{p.stderr}")
    return p


def psql(d, name, sql):
    code = ("import os,psycopg2,sys;c=psycopg2.connect(os.environ['DATABASE_URL']);c.autocommit=True;"
            "cur=c.cursor();cur.execute(sys.argv[1]);"
            "print('\\n'.join('|'.join(str(x) for x in r) for r in cur.fetchall()) if cur.description else 'ok')")
    return env_exec(d, name, "python3", "-c", code, sql).stdout.strip()


def cgroup_prefix(d):
    """The daemon's own cgroups are below branchbox/d-<8 hex of its state dir's sha256>."""
    return "d-" + hashlib.sha256(os.path.realpath(d.state).encode()).hexdigest()[:8]


def leftovers(d, name):
    """Everything of environment name still on the host (other daemons on the host may have an
    environment of the same name: their cgroups are not ours)."""
    found = []
    prefix = cgroup_prefix(d)
    for pat in [f"/sys/fs/cgroup/*/branchbox/{prefix}/env-{name}", f"/sys/fs/cgroup/branchbox/{prefix}/env-{name}"]:
        found += glob.glob(pat)
    for kind in ("run/netns", "code", "tmp", "logs"):
        p = os.path.join(d.state, kind, name)
        if os.path.exists(p):
            found.append(p)
    for line in open("/proc/self/mountinfo"):
        if f"/{name}" in line.split()[4] and d.state in line.split()[4]:
            found.append(line.split()[4])
    mnt = os.path.join(d.state, "pool", "mnt")
    for p in glob.glob(os.path.join(mnt, "*", name)) + glob.glob(os.path.join(mnt, name)):
        found.append(p)
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    found += [l for l in out.splitlines() if f"/srv/" in l and name in l]
    return found


def wait_ready(d, name, timeout=180):
    """Wait while an environment restarts after a daemon start; returns its info."""
    deadline = time.time() + timeout
    while True:
        info = json.loads(d.cli("env", "info", name, "--json").stdout)
        if info["state"] != "starting" or time.time() > deadline:
            return info
        time.sleep(0.3)


@pytest.fixture(scope="module")
def prod():
    tmp = tempfile.mkdtemp(prefix="bbx-env-")
    repo = os.path.join(tmp, "repo")
    subprocess.run([os.path.join(EXAMPLE, "make-repo.sh"), repo], check=True, capture_output=True)
    d = Daemon(tmp, repo, extra_args=["--preview-domain", "preview.test"]).start()
    try:
        p = d.cli("deploy", timeout=600)
        yield d
    finally:
        d.stop()
        try:
            d.down()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def test_production_deploys_and_serves(prod):
    info = json.loads(prod.cli("env", "info", "main", "--json").stdout)
    assert info["state"] == "ready" and info["kind"] == "production"
    states = {p["name"]: p["state"] for p in info["processes"]}
    assert states == {"db": "running", "cache": "running", "web": "running"}
    status, body = call(prod, "GET", "/preview/main/healthz")
    assert status == 200 and body.strip() == b"ok"
    status, body = call(prod, "GET", "/preview/main/")
    assert status == 200 and b"<h1>" in body
    # Ingress by host name under the preview domain reaches the same application.
    status, body = call(prod, "GET", "/healthz", host="main.preview.test:7480")
    assert status == 200 and body.strip() == b"ok"
    status, body = call(prod, "GET", "/api/todos", host="nosuch.preview.test")
    assert status == 404 and b"environment 'nosuch' not found" in body
    # Other hosts are the API as usual.
    assert call(prod, "GET", "/healthz", host="main.elsewhere.test")[1] != b"ok\n"
    status, body = call(prod, "POST", "/preview/main/api/todos", {"title": "from production"})
    assert status in (200, 201), body
    status, body = call(prod, "GET", "/preview/main/api/todos")
    assert b"from production" in body


def test_preview_clones_data_and_diverges(prod):
    psql(prod, "main", "INSERT INTO users (name, email) VALUES ('Alice', 'alice@real.example') ON CONFLICT DO NOTHING")
    before = psql(prod, "main", "SELECT count(*) FROM todos")
    git(prod.repo, "branch", "-f", "pr-data", "main")
    p = prod.cli("env", "create", "pr-data", "--json", timeout=600)
    info = json.loads(p.stdout)
    assert info["state"] == "ready" and info["parent"] == "main"
    try:
        # The preview sees production's rows...
        assert psql(prod, "pr-data", "SELECT count(*) FROM todos") == before
        # ...masked by sanitize before anyone could read them.
        emails = psql(prod, "pr-data", "SELECT email FROM users")
        assert "real.example" not in emails and "example.invalid" in emails
        assert "alice@real.example" in psql(prod, "main", "SELECT email FROM users")
        # Writes in the preview stay in the preview.
        psql(prod, "pr-data", "INSERT INTO todos (title) VALUES ('only in preview')")
        assert "only in preview" in psql(prod, "pr-data", "SELECT title FROM todos")
        assert "only in preview" not in psql(prod, "main", "SELECT title FROM todos")
        assert psql(prod, "main", "SELECT count(*) FROM todos") == before
        # The app in the preview answers through the proxy.
        status, body = call(prod, "GET", "/preview/pr-data/healthz")
        assert status == 200
    finally:
        prod.cli("env", "destroy", "pr-data", timeout=300)


def test_preview_credentials_are_new_and_useless_on_production(prod):
    git(prod.repo, "branch", "-f", "pr-creds", "main")
    prod.cli("env", "create", "pr-creds", timeout=600)
    try:
        prod_url = env_exec(prod, "main", "sh", "-c", "echo $DATABASE_URL").stdout.strip()
        prev_url = env_exec(prod, "pr-creds", "sh", "-c", "echo $DATABASE_URL").stdout.strip()
        prod_pw = re.search(r"://main:([0-9a-f]+)@", prod_url).group(1)
        prev_pw = re.search(r"://main:([0-9a-f]+)@", prev_url).group(1)
        assert prod_pw != prev_pw
        prod_redis = env_exec(prod, "main", "sh", "-c", "echo $REDIS_URL").stdout.strip()
        prev_redis = env_exec(prod, "pr-creds", "sh", "-c", "echo $REDIS_URL").stdout.strip()
        assert prod_redis != prev_redis
        code = ("import psycopg2,sys\n"
                "try:\n psycopg2.connect(host='database',user='main',dbname='main',password=sys.argv[1],connect_timeout=5)\n"
                " print('CONNECTED')\nexcept psycopg2.OperationalError as e:\n print('REFUSED', e)\n")
        # Refused by the server for the password, not for any other reason (a server that is
        # down, a timeout, an unknown host would also raise OperationalError).
        wrong_password = 'FATAL:  password authentication failed for user "main"'
        # Control: each environment's own password opens its own database, so the server is
        # there and the same probe can connect.
        for name, pw in (("main", prod_pw), ("pr-creds", prev_pw)):
            out = env_exec(prod, name, "python3", "-c", code, pw).stdout
            assert out.strip() == "CONNECTED", (name, out)
        # The preview's password does not open production's database...
        out = env_exec(prod, "main", "python3", "-c", code, prev_pw).stdout
        assert out.startswith("REFUSED") and wrong_password in out, out
        # ...and production's password does not open the preview's (the clone got new ones).
        out = env_exec(prod, "pr-creds", "python3", "-c", code, prod_pw).stdout
        assert out.startswith("REFUSED") and wrong_password in out, out
    finally:
        prod.cli("env", "destroy", "pr-creds", timeout=300)


def test_preview_cannot_reach_production_or_host(prod):
    git(prod.repo, "branch", "-f", "pr-net", "main")
    prod.cli("env", "create", "pr-net", timeout=600)
    try:
        # Positive control: the daemon's HTTP port answers on the host's loopback.
        with socket.create_connection(("127.0.0.1", prod.port), timeout=5):
            pass
        code = ("import socket,sys\nport=int(sys.argv[1])\n"
                "s=socket.socket();s.settimeout(3)\n"
                "try:\n s.connect(('127.0.0.1',port));print('OPEN')\nexcept OSError as e:\n print('CLOSED',e)\n")
        out = env_exec(prod, "pr-net", "python3", "-c", code, str(prod.port)).stdout
        assert "CLOSED" in out
        # Only loopback exists inside.
        ifaces = env_exec(prod, "pr-net", "sh", "-c", "cat /proc/net/dev").stdout
        names = [l.split(":")[0].strip() for l in ifaces.splitlines()[2:]]
        assert names == ["lo"]
        # The preview's "database" is its own: production's rows written now do not appear.
        psql(prod, "main", "INSERT INTO todos (title) VALUES ('written after the clone')")
        assert "written after the clone" not in psql(prod, "pr-net", "SELECT title FROM todos")
    finally:
        prod.cli("env", "destroy", "pr-net", timeout=300)


def test_destroy_leaves_nothing(prod):
    git(prod.repo, "branch", "-f", "pr-gone", "main")
    prod.cli("env", "create", "pr-gone", timeout=600)
    running = leftovers(prod, "pr-gone")  # positive control: it exists while it runs
    assert any("/sys/fs/cgroup/" in p for p in running), running
    assert any("run/netns" in p for p in running), running
    prod.cli("env", "destroy", "pr-gone", timeout=300)
    assert leftovers(prod, "pr-gone") == []
    p = prod.cli("env", "info", "pr-gone", check=False)
    assert p.returncode == 1 and "not found" in p.stderr
    assert "pr-gone" not in prod.cli("env", "list").stdout


def edit_main_config(repo, edit):
    """Commit edit(text) -> text of .branchbox/config.yaml on main; returns the old head."""
    old = git(repo, "rev-parse", "main").strip()
    branch_with_config(repo, "tmp-main-edit", edit)
    git(repo, "update-ref", "refs/heads/main", "refs/heads/tmp-main-edit")
    git(repo, "branch", "-D", "tmp-main-edit")
    return old


def env_processes(d, name):
    """{pid: (process name, uids, gids)} of every process in environment name's cgroups, each
    read on the host from /proc/PID/status (real, effective, saved and filesystem ids)."""
    prefix = cgroup_prefix(d)
    found = {}
    for base in (glob.glob(f"/sys/fs/cgroup/*/branchbox/{prefix}/env-{name}") +
                 glob.glob(f"/sys/fs/cgroup/branchbox/{prefix}/env-{name}")):
        for sub in os.listdir(base):
            what = sub.rsplit("-", 1)[0]  # "<process>-<8 hex>"
            for root, _, files in os.walk(os.path.join(base, sub)):
                if "cgroup.procs" not in files:
                    continue
                for pid in open(os.path.join(root, "cgroup.procs")).read().split():
                    try:
                        status = open(f"/proc/{pid}/status").read()
                    except (FileNotFoundError, ProcessLookupError):
                        continue  # ended meanwhile
                    ids = {l.split(":")[0]: tuple(int(x) for x in l.split()[1:])
                           for l in status.splitlines() if l.startswith(("Uid:", "Gid:"))}
                    found[int(pid)] = (what, ids["Uid"], ids["Gid"])
    return found


def env_identity(d, name):
    """(service uid, application uid) of a running environment, checking on the way that every
    process runs under one uid and gid pair, services under one, applications under another."""
    info = json.loads(d.cli("env", "info", name, "--json").stdout)
    kinds = {p["name"]: p["kind"] for p in info["processes"]}
    procs = env_processes(d, name)
    # Positive control: every supervised process is there, seen through the cgroups.
    assert {p["pid"] for p in info["processes"]} <= set(procs), (info["processes"], procs)
    seen = {"service": set(), "application": set()}
    for pid, (what, uids, gids) in procs.items():
        assert len(set(uids)) == 1 and gids == uids, (name, pid, what, uids, gids)
        seen[kinds[what]].add(uids[0])
    assert len(seen["service"]) == 1 and len(seen["application"]) == 1, (name, seen)
    service, app = seen["service"].pop(), seen["application"].pop()
    assert service != app and 0 not in (service, app)
    return service, app, info["processes"]


def volume_dir(d, name):
    paths = glob.glob(os.path.join(d.state, "pool", "mnt", "*", name))
    assert len(paths) == 1, paths
    return paths[0]


def test_environments_never_share_uids(prod):
    first, last = (int(x) for x in prod.uid_range.split("-"))
    for b in ("pr-id-a", "pr-id-b", "pr-id-c", "pr-id-d"):
        git(prod.repo, "branch", "-f", b, "main")
    # A branch whose build prints who it runs as, then fails.
    branch_with_config(prod.repo, "pr-id-x", lambda t: t.replace(
        "python3 -m py_compile *.py", 'echo "build-ids $(id -u) $(id -g)"; exit 3'))
    obstacle = os.path.join(prod.state, "logs", "pr-id-x", "obstacle")
    made = []
    try:
        for b in ("pr-id-a", "pr-id-b"):
            prod.cli("env", "create", b, timeout=600)
            made.append(b)
        ids = {n: env_identity(prod, n) for n in ("main", "pr-id-a", "pr-id-b")}
        pairs = [set(v[:2]) for v in ids.values()]
        for i, a in enumerate(pairs):
            assert all(first <= u <= last for u in a), (a, prod.uid_range)
            assert not a & {64000, 64001}  # the former fixed uids of every environment
            for b in pairs[i + 1:]:
                assert not a & b, ids

        # The preview's volume is a snapshot stored as production's uids, never chowned...
        main_db, main_app = ids["main"][:2]
        a_db, a_app = ids["pr-id-a"][:2]
        data = os.path.join(volume_dir(prod, "pr-id-a"), "services", "db", "data")
        for root, dirs, files in os.walk(volume_dir(prod, "pr-id-a")):
            for e in dirs + files:
                assert os.lstat(os.path.join(root, e)).st_uid in (0, main_db, main_app), (root, e)
        # ...including what its PostgreSQL created since (its pid file), and its processes see
        # all of it as their own (PostgreSQL refuses a data dir another uid owns).
        assert os.stat(os.path.join(data, "postmaster.pid")).st_uid == main_db
        db_pid = next(p["pid"] for p in ids["pr-id-a"][2] if p["name"] == "db")
        seen = os.stat(f"/proc/{db_pid}/root/srv/db/data")
        assert (seen.st_uid, seen.st_gid) == (a_db, a_db)
        assert os.stat(data).st_uid == main_db  # positive control: the same dir on the host
        web_pid = next(p["pid"] for p in ids["pr-id-a"][2] if p["name"] == "web")
        assert os.stat(f"/proc/{web_pid}/root/app/uploads").st_uid == a_app
        assert os.stat(os.path.join(volume_dir(prod, "pr-id-a"), "mounts", "web", "uploads")).st_uid == main_app
        # Fresh per environment, so simply its own: the checkout.
        code = glob.glob(os.path.join(prod.state, "code", "pr-id-a", "*"))
        assert code and all(os.stat(c).st_uid == a_app for c in code)

        # A preview whose files cannot all be removed keeps its uids: its create fails, the
        # teardown cannot remove its logs (a mount point in the way), its row goes anyway.
        os.makedirs(obstacle)
        subprocess.run(["mount", "-t", "tmpfs", "obstacle", obstacle], check=True)
        p = prod.cli("env", "create", "pr-id-x", check=False, timeout=600)
        assert p.returncode == 1 and "hook build of application web failed" in p.stderr, p.stderr
        x_app, x_gid = (int(v) for v in re.search(r"build-ids (\d+) (\d+)", p.stderr).groups())
        assert x_gid == x_app and x_app - 1 not in {u for pair in pairs for u in pair}
        assert "pr-id-x" not in prod.cli("env", "list").stdout
        assert os.path.isdir(os.path.dirname(obstacle))  # its files are still there
        prod.cli("env", "create", "pr-id-c", timeout=600)
        made.append("pr-id-c")
        c_ids = set(env_identity(prod, "pr-id-c")[:2])
        assert not c_ids & {x_app - 1, x_app}, (c_ids, x_app)
        assert not any(c_ids & pair for pair in pairs)

        # Once nothing of it is left, its uids are free again: the next start removes what
        # stayed, and the lowest free pair (its own) goes to the next preview.
        prod.cli("env", "destroy", "pr-id-c", timeout=300)
        made.remove("pr-id-c")
        subprocess.run(["umount", obstacle], check=True)
        prod.stop()
        prod.start()
        for n in ["main"] + made:
            assert wait_ready(prod, n)["state"] == "ready"
        assert not os.path.exists(os.path.dirname(obstacle))
        prod.cli("env", "create", "pr-id-d", timeout=600)
        made.append("pr-id-d")
        assert env_identity(prod, "pr-id-d")[:2] == (x_app - 1, x_app)
        # And the restarted environments kept theirs.
        for n in ("main", "pr-id-a", "pr-id-b"):
            assert env_identity(prod, n)[:2] == ids[n][:2]
    finally:
        if os.path.ismount(obstacle):
            subprocess.run(["umount", "-l", obstacle], capture_output=True)
        for n in made:
            prod.cli("env", "destroy", n, check=False, timeout=300)


def test_sanitize_failure_leaves_nothing(prod):
    # Sanitize is production's policy: a failing step in production's config fails every
    # preview closed, whatever the branch's config says.
    old = edit_main_config(prod.repo, lambda t: t.replace(
        "UPDATE users SET email = 'user' || id || '@example.invalid'", "UPDATE users SET nosuchcolumn = 1"))
    try:
        prod.cli("deploy", timeout=600)
        git(prod.repo, "branch", "-f", "pr-badsan", old)
        p = prod.cli("env", "create", "pr-badsan", check=False, timeout=600)
        assert p.returncode == 1
        assert "sanitize" in p.stderr and "nosuchcolumn" in p.stderr
        assert leftovers(prod, "pr-badsan") == []
        assert "pr-badsan" not in prod.cli("env", "list").stdout
    finally:
        git(prod.repo, "update-ref", "refs/heads/main", old)
        prod.cli("deploy", timeout=600)


def test_branch_config_cannot_drop_or_change_sanitize(prod):
    psql(prod, "main", "INSERT INTO users (name, email) VALUES ('Bob', 'bob@real.example') ON CONFLICT DO NOTHING")
    # A branch that deletes the masking step, and one that makes it a no-op.
    branch_with_config(prod.repo, "pr-nosan", lambda t: t.replace(
        "UPDATE users SET email = 'user' || id || '@example.invalid'", "SELECT 1"))
    prod.cli("env", "create", "pr-nosan", timeout=600)
    try:
        emails = psql(prod, "pr-nosan", "SELECT email FROM users")
        assert "real.example" not in emails and "example.invalid" in emails
    finally:
        prod.cli("env", "destroy", "pr-nosan", timeout=300)


def test_branch_config_cannot_widen_policy(prod):
    branch_with_config(prod.repo, "pr-wide", lambda t: t.replace("ttl: 24h", "ttl: 48h"))
    p = prod.cli("env", "create", "pr-wide", check=False, timeout=600)
    assert p.returncode == 1
    assert "environments.preview.ttl" in p.stderr and "asks for 2d" in p.stderr and "allows (1d)" in p.stderr
    assert leftovers(prod, "pr-wide") == []
    assert "pr-wide" not in prod.cli("env", "list").stdout


def test_build_failure_leaves_nothing(prod):
    # The build runs while the services start; its failure still fails the whole create.
    branch_with_config(prod.repo, "pr-badbuild", lambda t: t.replace(
        "python3 -m py_compile *.py", "echo compiling; echo broken >&2; exit 3"))
    p = prod.cli("env", "create", "pr-badbuild", check=False, timeout=600)
    assert p.returncode == 1
    assert "hook build of application web failed with exit status 3" in p.stderr and "broken" in p.stderr
    assert leftovers(prod, "pr-badbuild") == []
    assert "pr-badbuild" not in prod.cli("env", "list").stdout


def test_ttl_expiry(prod):
    branch_with_config(prod.repo, "pr-ttl", lambda t: t.replace("ttl: 24h", "ttl: 2s"))
    prod.cli("env", "create", "pr-ttl", timeout=600)
    deadline = time.time() + 60
    while time.time() < deadline and "pr-ttl" in prod.cli("env", "list").stdout:
        time.sleep(1)
    assert "pr-ttl" not in prod.cli("env", "list").stdout
    assert leftovers(prod, "pr-ttl") == []
    db = sqlite3.connect(os.path.join(prod.state, "state.db"))
    rows = db.execute("SELECT action, outcome FROM audit WHERE resource = 'environment:pr-ttl' "
                      "AND action = 'environment.expire'").fetchall()
    db.close()
    assert rows == [("environment.expire", "destroyed")]


def test_another_daemon_leaves_our_environments_alone(prod, tmpdir_path):
    before = {p["name"]: p["pid"] for p in json.loads(prod.cli("env", "info", "main", "--json").stdout)["processes"]}
    other_repo = os.path.join(tmpdir_path, "other-repo")
    subprocess.run([os.path.join(EXAMPLE, "make-repo.sh"), other_repo], check=True, capture_output=True)
    other = Daemon(tmpdir_path, other_repo).start()  # its crash recovery sweeps its own orphans
    try:
        time.sleep(1)
        after = {p["name"]: p["pid"] for p in json.loads(prod.cli("env", "info", "main", "--json").stdout)["processes"]}
        assert after == before and all(after.values())
        assert call(prod, "GET", "/preview/main/healthz")[0] == 200
    finally:
        other.stop()


def test_exec_status_and_errors(prod):
    p = env_exec(prod, "main", "sh", "-c", "echo out; exit 7", check=False)
    assert p.returncode == 7 and "out" in p.stdout
    # REST answers each stream apart (bounded, with its flag) and both together in output,
    # which the CLI prints as it always has.
    status, data = call(prod, "POST", "/v1/environments/main/exec",
                        {"command": ["sh", "-c", "echo out; echo err >&2; head -c 70000 /dev/zero"
                                     " | tr '\\0' e >&2; exit 7"]})
    j = json.loads(data)
    assert status == 200 and j["exit_code"] == 7, j
    assert j["stdout"] == "out\n" and j["stdout_truncated"] is False
    assert j["stderr"] == ("err\n" + "e" * 70000)[-65536:] and j["stderr_truncated"] is True
    assert j["output_bytes"] == 4 + 4 + 70000 and j["output_truncated"] is True
    p = env_exec(prod, "main", "sh", "-c", "echo out; echo err >&2", check=False)
    assert p.returncode == 0 and sorted(p.stdout.splitlines()) == ["err", "out"]
    p = prod.cli("env", "exec", "nosuch", "--", "true", check=False)
    assert p.returncode == 1 and "environment 'nosuch' not found" in p.stderr
    p = prod.cli("env", "create", "Bad/Name", check=False)
    assert p.returncode == 1 and "not valid" in p.stderr
    p = prod.cli("env", "create", "pr-nobranch", check=False)
    assert p.returncode == 1 and "branch 'pr-nobranch' not found" in p.stderr


def test_logs(prod):
    out = prod.cli("env", "logs", "main").stdout
    assert "web started" in out
    out = prod.cli("env", "logs", "main", "db").stdout
    assert "database system is ready" in out


@pytest.mark.parametrize("step", ["intent", "snapshot", "after-snapshot", "services", "sanitize", "app"])
def test_crash_mid_create_leaves_nothing(tmpdir_path, step):
    repo = os.path.join(tmpdir_path, "repo")
    subprocess.run([os.path.join(EXAMPLE, "make-repo.sh"), repo], check=True, capture_output=True)
    git(repo, "branch", "pr-crash", "main")
    d = Daemon(tmpdir_path, repo).start()
    try:
        d.cli("deploy", timeout=600)
        d.stop()
        os.environ["BRANCHBOX_DEBUG_STOP_AT"] = f"create:{step}"
        try:
            d.start()
        finally:
            del os.environ["BRANCHBOX_DEBUG_STOP_AT"]
        wait_ready(d, "main")
        p = d.cli("env", "create", "pr-crash", check=False, timeout=600)
        assert p.returncode != 0
        d.proc.wait(timeout=30)
        assert d.proc.returncode == -9  # the daemon died at the step
        d.start()
        # Either fully there or fully gone: a create that crashed is undone.
        assert "pr-crash" not in d.cli("env", "list").stdout
        assert leftovers(d, "pr-crash") == []
        db = sqlite3.connect(os.path.join(d.state, "state.db"))
        pending = db.execute("SELECT count(*) FROM operations WHERE state = 'pending'").fetchone()[0]
        db.close()
        assert pending == 0
        # Production came back by itself.
        assert wait_ready(d, "main")["state"] == "ready"
        status, body = call(d, "GET", "/preview/main/healthz")
        assert status == 200
        # And a new create works.
        d.cli("env", "create", "pr-crash", timeout=600)
        d.cli("env", "destroy", "pr-crash", timeout=300)
    finally:
        d.stop()
        d.down()
