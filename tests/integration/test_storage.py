# SPDX-License-Identifier: MIT
"""Copy-on-write volumes on real filesystems: a loop-mounted btrfs pool made by
`branchbox pool init`, reflink on an XFS loop image, and the copy driver on ext4.

Needs root (mounts, loop devices). Every mount, loop device and PostgreSQL started here is
removed in a finalizer, also when a test fails.
"""
import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import require_debug_hooks

BIN = os.environ.get("BRANCHBOX_BIN", "build/src/cli/branchbox")
PG_BIN = "/usr/lib/postgresql/15/bin"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

if os.geteuid() != 0:
    if IN_CI:
        raise RuntimeError("test_storage needs root (loop devices, mounts)")
    pytest.skip("test_storage needs root for loop devices and mounts", allow_module_level=True)


def run(*args, check=True, env=None, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


class PoolEnv:
    def __init__(self, driver, state, cleanup):
        self.driver = driver
        self.state = state
        self.cleanup = cleanup

    def bb(self, *args, check=True, stop_at=None):
        env = dict(os.environ)
        env.pop("BRANCHBOX_DEBUG_STOP_AT", None)
        if stop_at:
            require_debug_hooks(BIN)
            env["BRANCHBOX_DEBUG_STOP_AT"] = stop_at
        return run(BIN, *args, "--state", self.state, check=check, env=env)

    def info(self):
        return json.loads(self.bb("pool", "info", "--json").stdout)

    @property
    def root(self):
        return self.info()["root"]

    def path(self, name):
        return os.path.join(self.root, name)

    def free(self):
        os.sync()
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize


def detach_loops(image):
    p = run("losetup", "-j", image, check=False)
    for line in p.stdout.splitlines():
        dev = line.split(":", 1)[0]
        run("losetup", "-d", dev, check=False)


def umount_all(path):
    for _ in range(5):
        if not os.path.ismount(path):
            return
        if run("umount", path, check=False).returncode != 0:
            run("umount", "-l", path, check=False)


def make_pool(driver, request):
    base = tempfile.mkdtemp(prefix=f"bbx-st-{driver}-", dir="/tmp")
    state = os.path.join(base, "state")
    xfs_img = os.path.join(base, "xfs.img")
    xfs_mnt = os.path.join(base, "xfs")

    def cleanup():
        run(BIN, "pool", "destroy", "--force", "--state", state, check=False)
        mnt = os.path.join(state, "pool", "mnt")
        umount_all(mnt)
        detach_loops(os.path.join(state, "pool", "btrfs.img"))
        umount_all(xfs_mnt)
        detach_loops(xfs_img)
        shutil.rmtree(base, ignore_errors=True)

    request.addfinalizer(cleanup)
    env = PoolEnv(driver, state, cleanup)
    if driver == "btrfs":
        env.bb("pool", "init", "--driver", "btrfs", "--size", "2G")
    elif driver == "reflink":
        with open(xfs_img, "wb") as f:
            f.truncate(2 << 30)
        run("mkfs.xfs", "-q", "-m", "reflink=1", xfs_img)
        os.mkdir(xfs_mnt)
        run("mount", "-o", "loop", xfs_img, xfs_mnt)
        env.bb("pool", "init", "--driver", "reflink", "--path", xfs_mnt)
    else:
        env.bb("pool", "init", "--driver", "copy")
    return env


@pytest.fixture(params=["btrfs", "reflink", "copy"])
def pool(request):
    return make_pool(request.param, request)


@pytest.fixture
def btrfs_pool(request):
    return make_pool("btrfs", request)


def tree_hash(root):
    """Hash names, types, modes, owners, link targets and contents (not times)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            h.update(f"{rel}\0{st.st_mode:o}\0{st.st_uid}\0{st.st_gid}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
    return h.hexdigest()


def fill(root, mib=8):
    os.makedirs(os.path.join(root, "db", "base"), exist_ok=True)
    for i in range(50):
        with open(os.path.join(root, "db", "base", f"rel{i}"), "wb") as f:
            f.write(os.urandom(4096 * (1 + i % 16)))
    with open(os.path.join(root, "db", "big"), "wb") as f:
        f.write(os.urandom(mib << 20))
    with open(os.path.join(root, "sparse"), "wb") as f:
        f.seek(100 << 20)
        f.write(b"end")
    os.symlink("db/big", os.path.join(root, "link-in"))
    os.chmod(os.path.join(root, "db", "base", "rel3"), 0o600)
    os.chown(os.path.join(root, "db", "base", "rel4"), 101, 104)


def staging_entries(pool):
    return [e for e in os.listdir(pool.root) if e.startswith((".staging-", ".trash-"))]


def test_snapshot_is_isolated(pool):
    pool.bb("volume", "create", "prod")
    src = pool.path("prod")
    fill(src)
    before = tree_hash(src)
    pool.bb("volume", "snapshot", "prod", "preview")
    clone = pool.path("preview")
    assert tree_hash(clone) == before
    assert os.lstat(os.path.join(clone, "sparse")).st_blocks * 512 < (8 << 20)
    # change the clone every way an agent could
    with open(os.path.join(clone, "db", "big"), "r+b") as f:
        f.write(b"changed")
    os.unlink(os.path.join(clone, "db", "base", "rel1"))
    os.chmod(os.path.join(clone, "db", "base", "rel2"), 0o777)
    with open(os.path.join(clone, "new"), "w") as f:
        f.write("new")
    os.unlink(os.path.join(clone, "link-in"))
    os.symlink("sparse", os.path.join(clone, "link-in"))
    assert tree_hash(src) == before
    assert tree_hash(clone) != before
    vols = {v["name"]: v for v in json.loads(pool.bb("volume", "list", "--json").stdout)}
    assert set(vols) == {"prod", "preview"}
    assert vols["prod"]["path"] == src
    if pool.driver == "btrfs":
        assert vols["preview"]["shared_bytes"] > 0
    elif pool.driver == "copy":
        assert vols["preview"]["shared_bytes"] == 0
        assert vols["preview"]["exclusive_bytes"] >= 8 << 20
    assert staging_entries(pool) == []


def test_names_and_errors(pool):
    p = pool.bb("volume", "create", "../x", check=False)
    assert p.returncode == 1 and "invalid volume name" in p.stderr
    p = pool.bb("volume", "snapshot", "nope", "x", check=False)
    assert p.returncode == 1 and "nope: no such volume" in p.stderr
    pool.bb("volume", "create", "a")
    p = pool.bb("volume", "create", "a", check=False)
    assert "a: volume already exists" in p.stderr
    p = pool.bb("volume", "snapshot", "a", "a", check=False)
    assert "a: volume already exists" in p.stderr
    p = pool.bb("volume", "destroy", "zzz", check=False)
    assert "zzz: no such volume" in p.stderr


def test_layout_refusals(pool):
    pool.bb("volume", "create", "prod")
    src = pool.path("prod")
    os.makedirs(os.path.join(src, "pgdata", "base"))
    cases = [
        ("pgdata/abs", "/etc", "symlink at pgdata/abs points out of the volume"),
        ("pgdata/base/rel", "../../../x", "symlink at pgdata/base/rel points out of the volume"),
    ]
    for at, target, msg in cases:
        os.symlink(target, os.path.join(src, at))
        p = pool.bb("volume", "snapshot", "prod", "c", check=False)
        assert p.returncode == 1
        assert f"volume snapshot: prod: {msg}" in p.stderr
        os.unlink(os.path.join(src, at))
        assert not os.path.exists(pool.path("c"))
    if pool.driver == "btrfs":
        run("btrfs", "subvolume", "create", os.path.join(src, "pgdata", "sub"))
        p = pool.bb("volume", "snapshot", "prod", "c", check=False)
        assert p.returncode == 1
        assert ("volume snapshot: prod: nested subvolume at pgdata/sub breaks atomic snapshots"
                in p.stderr)
        # destroy still copes with a nested subvolume an agent made
        pool.bb("volume", "destroy", "prod")
    else:
        pool.bb("volume", "snapshot", "prod", "c")
    assert staging_entries(pool) == []


def test_destroy_frees_space(pool):
    pool.bb("volume", "create", "prod")
    pool.bb("volume", "snapshot", "prod", "preview")
    with open(os.path.join(pool.path("preview"), "blob"), "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1 << 20))
    pool.bb("volume", "usage", "preview")
    before = pool.free()
    pool.bb("volume", "destroy", "preview", "--sync")
    after = pool.free()
    assert after - before >= 150 << 20, (before, after)
    assert not os.path.exists(pool.path("preview"))



def write_until_full(path, limit_mib):
    """Write 1 MiB blocks (synced) until a write fails or limit_mib were written; returns
    (MiB written, the errno that stopped it or None)."""
    written = 0
    try:
        with open(path, "wb") as f:
            while written < limit_mib:
                f.write(os.urandom(1 << 20))
                f.flush()
                os.fsync(f.fileno())
                written += 1
    except OSError as e:
        return written, e.errno
    return written, None


def test_volume_quota(pool):
    """A snapshot bounded to 32 MiB gets EDQUOT past it while its source still writes; the
    reflink and copy drivers cannot bound a volume and say so instead of ignoring it."""
    pool.bb("volume", "create", "prod")
    with open(os.path.join(pool.path("prod"), "data"), "wb") as f:
        f.write(os.urandom(48 << 20))
    pool.bb("volume", "snapshot", "prod", "preview")
    info = pool.info()
    p = pool.bb("volume", "quota", "preview", "32M", check=False)
    if pool.driver != "btrfs":
        assert p.returncode == 1
        assert f"the {pool.driver} driver: a volume is a plain directory" in p.stderr
        assert info["quota_enforced"] is False and "can fill the pool" in info["quota_not_enforced"]
        assert "NOT ENFORCED" in pool.bb("pool", "info").stdout
        # nothing was bounded: the same write goes through
        assert write_until_full(os.path.join(pool.path("preview"), "fill"), 40) == (40, None)
        return
    assert p.returncode == 0, p.stderr
    assert info["quota_enforced"] is True and info["quota_not_enforced"] is None
    usage = json.loads(pool.bb("volume", "usage", "preview", "--json").stdout)
    assert usage["quota_bytes"] == 32 << 20
    # what it shares with its source (48 MiB) does not count; what it writes does
    written, err = write_until_full(os.path.join(pool.path("preview"), "fill"), 64)
    assert err in (errno.EDQUOT, errno.ENOSPC), (written, err)
    assert 16 <= written <= 32, written
    # its source has no bound and keeps writing
    assert write_until_full(os.path.join(pool.path("prod"), "more"), 64) == (64, None)
    # the bound goes away again
    pool.bb("volume", "quota", "preview", "none")
    usage = json.loads(pool.bb("volume", "usage", "preview", "--json").stdout)
    assert usage["quota_bytes"] is None
    assert write_until_full(os.path.join(pool.path("preview"), "fill2"), 40) == (40, None)
    p = pool.bb("volume", "quota", "preview", "0", check=False)
    assert p.returncode == 2 and "expected a size" in p.stderr

CRASH_POINTS = [
    ("volume-create:after-staging", "create"),
    ("volume-create:after-rename", "create"),
    ("volume-snapshot:mid-copy", "snapshot"),
    ("volume-snapshot:after-staging", "snapshot"),
    ("volume-snapshot:after-rename", "snapshot"),
    ("volume-destroy:after-rename", "destroy"),
]


@pytest.mark.parametrize("point,op", CRASH_POINTS)
def test_crash_points(pool, point, op):
    pool.bb("volume", "create", "prod")
    fill(pool.path("prod"), mib=2)
    want = tree_hash(pool.path("prod"))
    if op == "create":
        args = ["volume", "create", "v"]
    elif op == "snapshot":
        args = ["volume", "snapshot", "prod", "v"]
    else:
        pool.bb("volume", "snapshot", "prod", "v")
        args = ["volume", "destroy", "v"]
    p = pool.bb(*args, check=False, stop_at=point)
    killed = p.returncode == -signal.SIGKILL
    # btrfs never walks, so it never reaches the mid-copy point and finishes
    assert killed or (point == "volume-snapshot:mid-copy" and pool.driver == "btrfs"), p
    # reopen: leftovers are cleaned, the volume is complete or absent
    names = [v["name"] for v in json.loads(pool.bb("volume", "list", "--json").stdout)]
    assert staging_entries(pool) == []
    if "v" in names:
        assert op != "destroy" or point != "volume-destroy:after-rename"
        if op == "snapshot":
            assert tree_hash(pool.path("v")) == want
        else:
            assert os.listdir(pool.path("v")) == []
    else:
        assert point.endswith(("after-staging", "mid-copy")) or op == "destroy"
    if point.endswith("after-rename") and op != "destroy":
        assert "v" in names
    assert tree_hash(pool.path("prod")) == want


def test_freeze_files(pool):
    """A writer in a real freezer cgroup is frozen around the walk and thawed after."""
    freezer = "/sys/fs/cgroup/freezer"
    v2 = False
    if not os.path.isdir(freezer):
        if not os.path.exists("/sys/fs/cgroup/cgroup.freeze") and not os.path.exists(
                "/sys/fs/cgroup/cgroup.controllers"):
            if IN_CI:
                raise AssertionError("no cgroup freezer on this host")
            pytest.skip("no cgroup freezer on this host")
        freezer, v2 = "/sys/fs/cgroup", True
    cg = os.path.join(freezer, f"bbx-test-freeze-{os.getpid()}")
    os.mkdir(cg)
    pool.bb("volume", "create", "prod")
    src = pool.path("prod")
    writer = subprocess.Popen(
        ["sh", "-c", f"while :; do date +%s%N >> {src}/log; done"])
    try:
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(writer.pid))
        ffile = os.path.join(cg, "cgroup.freeze" if v2 else "freezer.state")
        time.sleep(0.2)
        pool.bb("volume", "snapshot", "prod", "c", "--freeze-file", ffile)
        with open(ffile) as f:
            state = f.read().strip()
        assert state in ("THAWED", "0")
        size = os.path.getsize(os.path.join(src, "log"))
        time.sleep(0.2)
        assert os.path.getsize(os.path.join(src, "log")) > size  # running again
    finally:
        writer.kill()
        writer.wait()
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.05)


def test_pool_init_info_destroy(btrfs_pool):
    pool = btrfs_pool
    info = pool.info()
    assert info["driver"] == "btrfs"
    assert info["image"].endswith("/pool/btrfs.img")
    assert info["mount_source"].startswith("/dev/loop")
    assert info["quotas"] is True
    assert info["size_bytes"] > 1 << 30
    assert "loop-mounted btrfs image" in info["reason"]
    # sparse: the 2G image costs far less
    assert os.stat(info["image"]).st_blocks * 512 < 512 << 20
    p = pool.bb("pool", "init", "--driver", "btrfs", "--size", "2G", "--json")  # idempotent
    again = json.loads(p.stdout)
    assert again["created"] is False and again["driver"] == "btrfs", again
    p = pool.bb("pool", "init", "--driver", "copy", check=False)
    assert p.returncode == 1 and "already initialized with driver btrfs" in p.stderr
    # an unmounted pool is remounted by the next command
    run("umount", os.path.join(pool.state, "pool", "mnt"))
    # autoclear frees the device once the last reference goes, which can lag the umount
    deadline = time.time() + 10
    while run("losetup", "-j", info["image"]).stdout and time.time() < deadline:
        time.sleep(0.1)
    assert run("losetup", "-j", info["image"]).stdout == ""
    assert "remounted" in pool.info()["status"]
    x = json.loads(pool.bb("volume", "create", "x", "--json").stdout)
    assert x["name"] == "x" and os.path.isdir(x["path"]), x
    p = pool.bb("pool", "destroy", check=False)
    assert p.returncode == 1 and "holds 1 volume (x)" in p.stderr
    pool.bb("pool", "destroy", "--force")
    assert not os.path.exists(info["image"])
    assert not os.path.ismount(os.path.join(pool.state, "pool", "mnt"))
    assert run("losetup", "-j", info["image"]).stdout == ""


def test_pool_default_and_path(request):
    base = tempfile.mkdtemp(prefix="bbx-st-path-", dir="/tmp")
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    state, data = os.path.join(base, "state"), os.path.join(base, "data")
    os.mkdir(data)
    p = run(BIN, "pool", "init", "--driver", "btrfs", "--path", data, "--state", state,
            check=False)
    assert p.returncode == 1 and "not btrfs" in p.stderr
    p = run(BIN, "pool", "init", "--driver", "reflink", "--path", data, "--state", state,
            check=False)
    assert p.returncode == 1 and "does not support FICLONE" in p.stderr
    run(BIN, "pool", "init", "--path", data, "--state", state)
    info = json.loads(run(BIN, "pool", "info", "--json", "--state", state).stdout)
    assert info["driver"] == "copy" and info["root"] == os.path.join(data, "volumes")
    assert "neither btrfs nor reflink" in info["reason"]
    run(BIN, "pool", "destroy", "--state", state)


# --- PostgreSQL: a snapshot of a cluster under write load is a consistent cluster ---

TRANSFER = """\\set a1 random(1, 500000)
\\set a2 random(1, 500000)
\\set lo least(:a1, :a2)
\\set hi greatest(:a1, :a2)
\\set delta random(1, 1000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance - :delta WHERE aid = :lo;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :hi;
END;
"""


def as_postgres(*args, **kw):
    return run("runuser", "-u", "postgres", "--", *args, **kw)


def open_path_for(path):
    """Let the postgres user traverse down to path (the pool dirs are 0700)."""
    p = path
    while p not in ("/", ""):
        st = os.stat(p)
        os.chmod(p, stat.S_IMODE(st.st_mode) | 0o111)
        p = os.path.dirname(p)


def pg_start(datadir, sockdir, log):
    as_postgres(f"{PG_BIN}/pg_ctl", "-D", datadir, "-l", log, "-w", "-t", "120",
                "-o", f"-p 5432 -k {sockdir} -c listen_addresses=''", "start")


def pg_stop(datadir):
    if os.path.exists(os.path.join(datadir, "postmaster.pid")):
        as_postgres(f"{PG_BIN}/pg_ctl", "-D", datadir, "-m", "fast", "-w", "stop", check=False)


def psql(sockdir, sql):
    return as_postgres(f"{PG_BIN}/psql", "-h", sockdir, "-p", "5432", "-U", "postgres",
                       "-d", "postgres", "-Atc", sql).stdout.strip()


def test_postgres_snapshot_under_load(btrfs_pool, request):
    pool = btrfs_pool
    if not os.path.exists(f"{PG_BIN}/initdb"):
        raise AssertionError("PostgreSQL 15 is missing: run scripts/install-deps")
    pool.bb("volume", "create", "pg")
    vol = pool.path("pg")
    open_path_for(vol)
    data = os.path.join(vol, "pgdata")
    os.mkdir(data, 0o700)
    os.chown(data, 101, 104)
    os.chown(vol, 101, 104)
    work = tempfile.mkdtemp(prefix="bbx-st-pg-", dir="/tmp")
    os.chmod(work, 0o755)
    sock1, sock2 = os.path.join(work, "s1"), os.path.join(work, "s2")
    for d in (sock1, sock2):
        os.mkdir(d)
        os.chown(d, 101, 104)
    os.chown(work, 101, 104)
    clone_data = os.path.join(pool.path("pgclone"), "pgdata")
    request.addfinalizer(lambda: shutil.rmtree(work, ignore_errors=True))
    # finalizers run last-in first-out: stop both clusters before the pool goes
    request.addfinalizer(lambda: pg_stop(data))
    request.addfinalizer(lambda: pg_stop(clone_data))

    as_postgres(f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "-N")
    pg_start(data, sock1, os.path.join(work, "src.log"))
    as_postgres(f"{PG_BIN}/pgbench", "-h", sock1, "-p", "5432", "-U", "postgres", "-i",
                "-s", "5", "-q", "postgres")
    assert psql(sock1, "SELECT sum(abalance) FROM pgbench_accounts") == "0"
    script = os.path.join(work, "transfer.sql")
    with open(script, "w") as f:
        f.write(TRANSFER)
    bench = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", f"{PG_BIN}/pgbench", "-h", sock1, "-p", "5432",
         "-U", "postgres", "-n", "-c", "4", "-T", "10", "-f", script, "postgres"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(4)
        assert bench.poll() is None, "pgbench ended before the snapshot"
        pool.bb("volume", "snapshot", "pg", "pgclone")
        out, _ = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert bench.returncode == 0, out
    assert "number of failed transactions: 0" in out or "failed" not in out, out
    assert psql(sock1, "SELECT sum(abalance) FROM pgbench_accounts") == "0"

    # the clone: a separate cluster that recovers from the crash-consistent image
    os.unlink(os.path.join(clone_data, "postmaster.pid"))
    pg_start(clone_data, sock2, os.path.join(work, "clone.log"))
    assert psql(sock2, "SELECT sum(abalance) FROM pgbench_accounts") == "0"
    n = int(psql(sock2, "SELECT count(*) FROM pgbench_history"))
    assert n == 0  # the transfer script writes no history; the init left none either
    moved = int(psql(sock2, "SELECT count(*) FROM pgbench_accounts WHERE abalance <> 0"))
    assert moved > 0  # the snapshot caught the load in flight, not an idle cluster
    check = as_postgres(f"{PG_BIN}/pg_amcheck", "-h", sock2, "-p", "5432", "-U", "postgres",
                        "--install-missing", "--all", "--heapallindexed", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # the clone is independent: writes there leave the source alone
    psql(sock2, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1")
    assert psql(sock1, "SELECT sum(abalance) FROM pgbench_accounts") == "0"
    pg_stop(clone_data)
    pg_stop(data)
