"""The example project (examples/todo) works for real: a throwaway PostgreSQL 15 cluster and
redis-server on loopback, migrations, seed data, the HTTP endpoints and its own unit tests.

Every process started here is stopped by pid in a finalizer; temporary directories are removed.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "todo")
PYTHON = "/usr/bin/python3"  # Debian's, which has psycopg2 and redis
PG_BIN = "/usr/lib/postgresql/15/bin"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc):
    """Terminate one process we started, by its pid, and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(check, what, timeout=60):
    """Poll check() until it is true; a timeout here is a failure, never a timing assertion."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as e:  # not ready yet
            last = e
        time.sleep(0.1)
    pytest.fail(f"{what} did not become ready: {last}")


def need(path_or_cmd):
    if shutil.which(path_or_cmd) or os.path.exists(path_or_cmd):
        return
    msg = f"{path_or_cmd} is not installed (scripts/install-deps installs it)"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def workdir():
    d = tempfile.mkdtemp(prefix="bbx-example-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres(workdir):
    need(os.path.join(PG_BIN, "initdb"))
    if os.geteuid() != 0:
        msg = "running PostgreSQL as the postgres user needs root"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    data = os.path.join(workdir, "pgdata")
    sock = os.path.join(workdir, "pgsock")
    for d in (data, sock):
        os.mkdir(d, 0o700)
        shutil.chown(d, "postgres", "postgres")
    subprocess.run([os.path.join(PG_BIN, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
                    "--no-sync", "-E", "UTF8", "--locale=C"],
                   user="postgres", group="postgres", check=True, capture_output=True)
    port = free_port()
    log = open(os.path.join(workdir, "postgres.log"), "wb")
    proc = subprocess.Popen([os.path.join(PG_BIN, "postgres"), "-D", data, "-k", sock,
                             "-p", str(port), "-c", "listen_addresses=127.0.0.1",
                             "-c", "fsync=off", "-c", "full_page_writes=off"],
                            user="postgres", group="postgres", stdout=log, stderr=log,
                            start_new_session=True)
    try:
        import psycopg2

        def ready():
            psycopg2.connect(host=sock, port=port, user="postgres", dbname="postgres",
                             connect_timeout=2).close()
            return True

        wait_until(ready, "postgres")
        conn = psycopg2.connect(host=sock, port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE ROLE todo LOGIN PASSWORD 'secret'")
            cur.execute("CREATE DATABASE todo OWNER todo")
        conn.close()
        yield {"port": port, "socket": sock,
               "url": f"postgresql://todo:secret@127.0.0.1:{port}/todo"}
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def redis_server(workdir):
    need("redis-server")
    port = free_port()
    rdir = os.path.join(workdir, "redis")
    os.mkdir(rdir)
    log = open(os.path.join(workdir, "redis.log"), "wb")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", rdir,
                             "--daemonize", "no"], stdout=log, stderr=log,
                            start_new_session=True)
    try:
        import redis

        wait_until(lambda: redis.Redis(host="127.0.0.1", port=port).ping(), "redis")
        yield {"port": port, "url": f"redis://127.0.0.1:{port}/0"}
    finally:
        stop(proc)
        log.close()


def example_env(extra):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra)
    return env


def run_example(script, env, *args):
    return subprocess.run([PYTHON, script, *args], cwd=EXAMPLE, env=env, capture_output=True,
                          text=True, timeout=120)


def http(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope="module")
def db_env(postgres):
    return example_env({"DATABASE_URL": postgres["url"]})


def start_app(workdir, env, name):
    log = open(os.path.join(workdir, f"{name}.log"), "wb")
    proc = subprocess.Popen([PYTHON, "app.py"], cwd=EXAMPLE, env=env, stdout=log, stderr=log,
                            start_new_session=True)
    return proc, log


@pytest.fixture(scope="module")
def app(workdir, postgres, redis_server, db_env):
    r = run_example("migrate.py", db_env, "--seed")
    assert r.returncode == 0, r.stderr
    port = free_port()
    # The app gets its database through the relationship variables and Redis through a URL,
    # so both ways of configuring it are exercised.
    env = example_env({"PORT": str(port), "APP_MODE": "production",
                       "DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": str(postgres["port"]),
                       "DATABASE_USER": "todo", "DATABASE_PASSWORD": "secret",
                       "DATABASE_NAME": "todo", "REDIS_URL": redis_server["url"]})
    proc, log = start_app(workdir, env, "app")
    try:
        def healthy():
            assert proc.poll() is None, "app.py exited"
            return http(port, "GET", "/healthz")[0] == 200

        wait_until(healthy, "app.py")
        yield port
    finally:
        stop(proc)
        log.close()


def test_migrate_is_idempotent(db_env):
    import psycopg2

    for _ in range(2):
        r = run_example("migrate.py", db_env)
        assert r.returncode == 0, r.stderr
    r = run_example("migrate.py", db_env)
    assert "up to date" in r.stdout
    conn = psycopg2.connect(db_env["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [row[0] for row in cur.fetchall()] == [1, 2, 3]
        # count(*) always answers one row, so the row count proves nothing: the value must be
        # the three migrations, each recorded once however often migrate.py ran.
        cur.execute("SELECT count(*) FROM schema_migrations")
        assert cur.fetchall() == [(3,)]
    conn.close()


def test_healthz(app):
    assert http(app, "GET", "/healthz") == (200, "ok")


def test_todos_api(app):
    status, body = http(app, "GET", "/api/todos")
    assert status == 200
    titles = [t["title"] for t in json.loads(body)["todos"]]
    assert "Write the quarterly report" in titles  # seeded

    status, body = http(app, "POST", "/api/todos", {"title": "  ship <the> demo  "})
    assert status == 201, body
    created = json.loads(body)
    assert created["title"] == "ship <the> demo" and created["done"] is False

    status, body = http(app, "GET", "/api/todos")
    assert created["id"] in [t["id"] for t in json.loads(body)["todos"]]

    assert http(app, "POST", "/api/todos", {"title": ""})[0] == 400
    assert http(app, "POST", "/api/todos", ["not", "an", "object"])[0] == 400
    assert http(app, "GET", "/nope")[0] == 404


def test_index_and_stats(app):
    http(app, "POST", "/api/todos", {"title": "<script>alert(1)</script>"})
    status, page = http(app, "GET", "/")
    assert status == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "mode production" in page
    views_before = json.loads(http(app, "GET", "/api/stats")[1])["page_views"]
    http(app, "GET", "/")
    stats = json.loads(http(app, "GET", "/api/stats")[1])
    assert stats["page_views"] == views_before + 1
    assert stats["users"] == 3
    assert stats["todos"] >= 4 and stats["done"] >= 1
    assert stats["open"] == stats["todos"] - stats["done"]


def test_config_sql_runs(app, db_env):
    """The sanitize and validate SQL in .branchbox/config.yaml fit the schema: emails are
    masked, the app stays healthy, and the schema check finds production's three migrations."""
    import re

    import psycopg2

    with open(os.path.join(EXAMPLE, ".branchbox", "config.yaml")) as f:
        config = f.read()
    sanitize = re.findall(r'^\s*- sql: "(.*)"$', config, re.M)
    queries = re.findall(r'^\s*query: "(.*)"$', config, re.M)
    assert len(sanitize) == 1 and len(queries) == 1
    conn = psycopg2.connect(db_env["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute(sanitize[0])
        cur.execute("SELECT id, email FROM users ORDER BY id")
        rows = cur.fetchall()
        assert rows and all(email == f"user{uid}@example.invalid" for uid, email in rows)
        cur.execute(queries[0])
        assert sorted(cur.fetchall()) == [(1,), (2,), (3,)]
    conn.close()
    assert http(app, "GET", "/healthz") == (200, "ok")


def test_healthz_fails_without_redis(workdir, postgres, db_env):
    # Same database, a Redis port where nothing listens: not healthy.
    port = free_port()
    env = dict(db_env, PORT=str(port), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    proc, log = start_app(workdir, env, "app-noredis")
    try:
        def answering():
            assert proc.poll() is None, "app.py exited"
            return http(port, "GET", "/api/todos")[0] == 200

        wait_until(answering, "app.py without redis")
        status, body = http(port, "GET", "/healthz")
        assert status == 503
        assert "redis" in body
    finally:
        stop(proc)
        log.close()


def test_platform_relationships_fallback(workdir, postgres, redis_server):
    import base64

    rel = {"database": [{"scheme": "pgsql", "host": "127.0.0.1", "port": postgres["port"],
                         "username": "todo", "password": "secret", "path": "todo"}],
           "cache": [{"scheme": "redis", "host": "127.0.0.1", "port": redis_server["port"]}]}
    port = free_port()
    env = example_env({"PORT": str(port), "PLATFORM_RELATIONSHIPS":
                       base64.b64encode(json.dumps(rel).encode()).decode()})
    proc, log = start_app(workdir, env, "app-relationships")
    try:
        def healthy():
            assert proc.poll() is None, "app.py exited"
            return http(port, "GET", "/healthz")[0] == 200

        wait_until(healthy, "app.py with PLATFORM_RELATIONSHIPS")
    finally:
        stop(proc)
        log.close()


def test_example_unit_tests():
    r = subprocess.run([PYTHON, "-m", "unittest", "discover", "-s", "tests"], cwd=EXAMPLE,
                       env=example_env({}), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stderr


def test_build_hook_compiles(workdir):
    # What hooks.build runs, on a copy (the example tree stays free of bytecode).
    copy = os.path.join(workdir, "build-copy")
    shutil.copytree(EXAMPLE, copy)
    r = subprocess.run("python3 -m py_compile *.py", shell=True, cwd=copy,
                       env=example_env({}), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_make_repo(workdir):
    need("git")
    dest = os.path.join(workdir, "repo")
    r = subprocess.run([os.path.join(EXAMPLE, "make-repo.sh"), dest], capture_output=True,
                       text=True, env=example_env({"HOME": workdir}))
    assert r.returncode == 0, r.stderr
    head = r.stdout.strip()
    assert len(head) == 40

    def git(*args):
        return subprocess.run(["git", "-C", dest, *args], capture_output=True, text=True,
                              check=True, env=example_env({"HOME": workdir})).stdout.strip()

    assert git("rev-parse", "refs/heads/main") == head
    assert git("symbolic-ref", "HEAD") == "refs/heads/main"
    assert git("status", "--porcelain") == ""
    assert git("log", "-1", "--format=%an <%ae>") == "branchbox demo <demo@branchbox.invalid>"
    files = git("ls-files").splitlines()
    for f in (".branchbox/config.yaml", "app.py", "migrate.py", "seed.py", "settings.py",
              "tests/test_settings.py", "make-repo.sh", "README.md"):
        assert f in files
    assert not [f for f in files if "__pycache__" in f]
    assert git("ls-files", "-s", "make-repo.sh").startswith("100755")
    # A second run refuses to overwrite.
    assert subprocess.run([os.path.join(EXAMPLE, "make-repo.sh"), dest],
                          capture_output=True).returncode != 0


def test_search_has_the_seeded_bug(app):
    """The bug the proposal demo fixes (README: The seeded bug): every search answers 500, and
    production's validate step 'search' is what catches it."""
    status, body = http(app, "GET", "/api/todos?q=report")
    assert status == 500 and "TypeError" in body
    with open(os.path.join(EXAMPLE, ".branchbox", "config.yaml")) as f:
        assert "path: /api/todos?q=report" in f.read()
