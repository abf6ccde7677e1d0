#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Clone and teardown times of copy-on-write volumes, side by side with cp -a.

Usage: bench/storage.py BUILD_DIR   (root; rewrites the storage section of bench/RESULTS.md)

Datasets: 100 MiB, 1 GiB and 10 GiB trees (10% of the bytes in 4-64 KiB files, the rest in
four large files) and real PostgreSQL data dirs from `pgbench -i -s 7` and `-s 70`. Each is
generated once into a btrfs volume of a loop-backed pool made by `branchbox pool init`, and
copied to an XFS (reflink=1) loop pool and an ext4 copy pool. Every figure comes from
one interleaved run per dataset: median, min and max, and the ratio to a plain `cp -a` on the
same filesystem (btrfs, XFS, ext4).
BENCH_QUICK=1 uses 10/20/40 MiB datasets to check the script itself (printed, not recorded).
"""
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
BEGIN, END = "<!-- bench:storage -->", "<!-- /bench:storage -->"
PG_BIN = "/usr/lib/postgresql/15/bin"
QUICK = bool(os.environ.get("BENCH_QUICK"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
SEED = ["- 2026-11-29 20:24 UTC, commit not recorded (hyperfine per command, not interleaved; "
        "every ratio against cp -a on ext4, not on the same filesystem): 1G branchbox volume "
        "snapshot (btrfs) 56.1 ms, 58.1x cp -a (ext4), under the 100x target; 10G 39.2 ms; "
        "teardown 1G 139.2 ms"]
NOTE = ("A `branchbox volume snapshot` row includes the process start, opening the pool, the "
        "layout check (nested-subvolume iterator plus a symlink walk that reads directories "
        "only, via d_type) and the rename out of staging. The machine is shared: compare rows "
        "of one run, not across runs.")

if QUICK:
    SIZES = [("100M", 10 << 20), ("1G", 20 << 20), ("10G", 40 << 20)]
    PG_SCALES = [("pg-100M", 1)]
else:
    SIZES = [("100M", 100 << 20), ("1G", 1 << 30), ("10G", 10 << 30)]
    PG_SCALES = [("pg-100M", 7), ("pg-1G", 70)]


def sh(cmd, check=True, **kw):
    p = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {p.stdout}{p.stderr}")
    return p.stdout


def log(msg):
    print(f"storage bench: {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, build):
        self.bin = os.path.abspath(os.path.join(build, "src", "cli", "branchbox"))
        self.base = tempfile.mkdtemp(prefix="bbx-bench-storage-", dir="/var/tmp")
        self.btrfs_state = os.path.join(self.base, "btrfs-state")
        self.copy_state = os.path.join(self.base, "copy-state")
        self.xfs_state = os.path.join(self.base, "xfs-state")
        self.xfs_img = os.path.join(self.base, "xfs.img")
        self.xfs_mnt = os.path.join(self.base, "xfs")
        self.ext4 = os.path.join(self.base, "ext4")
        self.sock = os.path.join(self.base, "sock")
        self.rows = []
        self.files = {}
        self.pg_running = None

    # -- setup ------------------------------------------------------------------------
    def bb(self, state, *args):
        return sh([self.bin, *args, "--state", state])

    def root(self, state):
        return json.loads(self.bb(state, "pool", "info", "--json"))["root"]

    def setup(self):
        total = sum(s for _, s in SIZES) + (2 << 30 if not QUICK else 0)
        self.bb(self.btrfs_state, "pool", "init", "--driver", "btrfs", "--size",
                f"{max(16 << 30, total * 2) >> 30}G")
        with open(self.xfs_img, "wb") as f:
            f.truncate(max(16 << 30, total * 2))
        sh(["mkfs.xfs", "-q", "-m", "reflink=1", self.xfs_img])
        os.mkdir(self.xfs_mnt)
        # discard: what is removed in it is given back to the host's disk too
        sh(["mount", "-o", "loop,discard", self.xfs_img, self.xfs_mnt])
        self.bb(self.xfs_state, "pool", "init", "--driver", "reflink", "--path", self.xfs_mnt)
        self.bb(self.copy_state, "pool", "init", "--driver", "copy")
        os.mkdir(self.ext4)
        self.broot = self.root(self.btrfs_state)
        self.xroot = self.root(self.xfs_state)
        self.croot = self.root(self.copy_state)

    def gen_tree(self, root, size):
        rng = random.Random(size)
        buf = os.urandom(64 << 20)
        small = size // 10
        n = 0
        written = 0
        while written < small:
            d = os.path.join(root, "small", f"d{n // 500:04d}")
            if n % 500 == 0:
                os.makedirs(d)
            sz = rng.randint(4 << 10, 64 << 10)
            off = rng.randint(0, len(buf) - sz)
            with open(os.path.join(d, f"f{n:06d}"), "wb") as f:
                f.write(buf[off:off + sz])
            written += sz
            n += 1
        big = (size - written) // 4
        os.makedirs(os.path.join(root, "large"))
        for i in range(4):
            with open(os.path.join(root, "large", f"blob{i}"), "wb") as f:
                left = big
                while left > 0:
                    chunk = min(left, len(buf))
                    f.write(buf[:chunk])
                    left -= chunk
        return n + 4

    def gen_pg(self, root, scale):
        data = os.path.join(root, "pgdata")
        os.mkdir(data, 0o700)
        p = root
        while p != "/":
            os.chmod(p, os.stat(p).st_mode | 0o111)
            p = os.path.dirname(p)
        os.makedirs(self.sock, exist_ok=True)
        for d in (data, root, self.sock):
            os.chown(d, 101, 104)
        pg = ["runuser", "-u", "postgres", "--"]
        sh(pg + [f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "-N"])
        sh(pg + [f"{PG_BIN}/pg_ctl", "-D", data, "-l", os.path.join(self.sock, "pg.log"), "-w",
                 "-o", f"-p 5432 -k {self.sock} -c listen_addresses=''", "start"])
        self.pg_running = data
        try:
            sh(pg + [f"{PG_BIN}/pgbench", "-h", self.sock, "-U", "postgres", "-i", "-q", "-s",
                     str(scale), "postgres"])
        finally:
            sh(pg + [f"{PG_BIN}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])
            self.pg_running = None
        n = sum(len(f) for _, _, f in os.walk(root))
        return n

    def datasets(self):
        for name, size in SIZES:
            log(f"generating {name}")
            self.bb(self.btrfs_state, "volume", "create", name.lower())
            self.files[name] = self.gen_tree(os.path.join(self.broot, name.lower()), size)
        for name, scale in PG_SCALES:
            log(f"generating {name} (pgbench -i -s {scale})")
            self.bb(self.btrfs_state, "volume", "create", name.lower())
            self.files[name] = self.gen_pg(os.path.join(self.broot, name.lower()), scale)
        for name in self.names():
            log(f"copying {name} to the XFS and ext4 pools")
            v = name.lower()
            for state, root in ((self.xfs_state, self.xroot), (self.copy_state, self.croot)):
                self.bb(state, "volume", "create", v)
                sh(["cp", "-a", "--reflink=never", os.path.join(self.broot, v) + "/.",
                    os.path.join(root, v)])
        os.sync()

    def names(self):
        return [n for n, _ in SIZES] + [n for n, _ in PG_SCALES]

    def dataset_bytes(self, name):
        return int(sh(["du", "-sb", os.path.join(self.broot, name.lower())]).split()[0])

    # -- measuring --------------------------------------------------------------------
    def timed(self, cmd, shell):
        """Wall seconds of one run of cmd."""
        argv = ["/bin/sh", "-c", cmd] if shell else cmd.split()
        t = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t = time.perf_counter() - t
        if p.returncode != 0:
            raise RuntimeError(f"{cmd} failed: {p.stderr}")
        return t

    def interleave(self, name, cmds):
        """cmds: [(what, cmd, prepare, runs, warmup, shell)]. Round r runs every command that
        still has runs left, each after its prepare, the order rotated every round, so the
        commands compared share the machine's noise."""
        times = {c[0]: [] for c in cmds}
        rounds = max(c[3] + c[4] for c in cmds)
        for r in range(rounds):
            order = cmds[r % len(cmds):] + cmds[:r % len(cmds)]
            for what, cmd, prepare, runs, warmup, shell in order:
                if r >= runs + warmup:
                    continue
                subprocess.run(["/bin/sh", "-c", prepare], capture_output=True)
                log(f"{name}: {what} (round {r + 1})")
                t = self.timed(cmd, shell)
                if r >= warmup:
                    times[what].append(t)
                # A copy's prepare removes the copy: at once, so the 10G round never holds
                # every command's copy on the host's disk together. A teardown's prepare makes
                # what it removes: not again.
                if not what.startswith("teardown:"):
                    subprocess.run(["/bin/sh", "-c", prepare], capture_output=True)
        for what, cmd, _, _, _, _ in cmds:
            t = sorted(times[what])
            med = t[len(t) // 2] if len(t) % 2 else (t[len(t) // 2 - 1] + t[len(t) // 2]) / 2
            self.rows.append({"dataset": name, "what": what, "cmd": cmd, "median": med,
                              "min": t[0], "max": t[-1], "runs": len(t)})

    def run(self):
        b = self.bin
        for name in self.names():
            v = name.lower()
            big = name.endswith("10G")
            slow_runs, slow_warm = (2, 0) if big else (3, 1) if name.endswith("1G") else (5, 1)
            bs, xs, cs = self.btrfs_state, self.xfs_state, self.copy_state
            mnt = os.path.dirname(self.broot)
            bclean = (f"btrfs subvolume delete -c {mnt}/bclone >/dev/null 2>&1; rm -rf "
                      f"{mnt}/cpclone {mnt}/rlclone; btrfs subvolume sync {mnt} >/dev/null 2>&1; "
                      "sync; true")
            xclean = f"rm -rf {self.xfs_mnt}/rclone {self.xfs_mnt}/cclone; sync"
            # (what, command, prepare, runs, warm-up, through a shell)
            cmds = [
                ("branchbox volume snapshot (btrfs)", f"{b} volume snapshot {v} clone --state {bs}",
                 f"{b} volume destroy --sync clone --state {bs} >/dev/null 2>&1; true", 10, 2,
                 False),
                ("btrfs subvolume snapshot (btrfs)",
                 f"btrfs subvolume snapshot {self.broot}/{v} {mnt}/bclone", bclean, 10, 2, False),
                ("cp -a --reflink=always (btrfs)",
                 f"cp -a --reflink=always {self.broot}/{v} {mnt}/rlclone", bclean,
                 3 if big else 5, 1, False),
                ("cp -a (btrfs)", f"cp -a --reflink=never {self.broot}/{v} {mnt}/cpclone", bclean,
                 slow_runs, slow_warm, False),
                ("branchbox volume snapshot (reflink, XFS)",
                 f"{b} volume snapshot {v} clone --state {xs}",
                 f"{b} volume destroy --sync clone --state {xs} >/dev/null 2>&1; true",
                 3 if big else 5, 1, False),
                ("cp -a --reflink=always (XFS)",
                 f"cp -a --reflink=always {self.xroot}/{v} {self.xfs_mnt}/rclone", xclean,
                 3 if big else 5, 1, False),
                ("cp -a (XFS)", f"cp -a --reflink=never {self.xroot}/{v} {self.xfs_mnt}/cclone",
                 xclean, slow_runs, slow_warm, False),
                ("branchbox volume snapshot (copy, ext4)",
                 f"{b} volume snapshot {v} clone --state {cs}",
                 f"{b} volume destroy --sync clone --state {cs} >/dev/null 2>&1; true",
                 slow_runs, slow_warm, False),
                ("cp -a (ext4)", f"cp -a {self.croot}/{v} {self.ext4}/clone",
                 f"rm -rf {self.ext4}/clone; sync", slow_runs, slow_warm, False),
            ]
            self.interleave(name, cmds)
            sh(f"rm -rf {self.ext4}/clone {mnt}/cpclone {mnt}/rlclone {self.xfs_mnt}/rclone "
               f"{self.xfs_mnt}/cclone; btrfs subvolume delete -c {mnt}/bclone >/dev/null 2>&1;"
               f"{b} volume destroy clone --state {cs} || true;"
               f"{b} volume destroy clone --state {xs} || true;"
               f"{b} volume destroy clone --state {bs} || true")
            if name in ("1G", "10G", "pg-1G") or (QUICK and name == "1G"):
                self.interleave(name, [
                    ("teardown: branchbox volume destroy --sync (btrfs)",
                     f"{b} volume destroy --sync tclone --state {bs}",
                     f"{b} volume snapshot {v} tclone --state {bs} >/dev/null; sync", 5, 1, False),
                    ("teardown: rm -rf (btrfs)", f"rm -rf {mnt}/tcp",
                     f"cp -a --reflink=never {self.broot}/{v} {mnt}/tcp; sync",
                     2 if big else 3, 0, False),
                    ("teardown: rm -rf (ext4)", f"rm -rf {self.ext4}/tclone",
                     f"cp -a {self.croot}/{v} {self.ext4}/tclone; sync", 2 if big else 3, 0,
                     False)])

    # -- cleanup and report -----------------------------------------------------------
    def cleanup(self):
        if self.pg_running:
            subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "-D",
                            self.pg_running, "-m", "fast", "stop"], capture_output=True)
        for state in (self.btrfs_state, self.xfs_state, self.copy_state):
            subprocess.run([self.bin, "pool", "destroy", "--force", "--state", state],
                           capture_output=True)
        for mnt in (os.path.join(self.btrfs_state, "pool", "mnt"), self.xfs_mnt):
            if os.path.ismount(mnt):
                subprocess.run(["umount", "-l", mnt], capture_output=True)
        for img in (self.xfs_img, os.path.join(self.btrfs_state, "pool", "btrfs.img")):
            out = subprocess.run(["losetup", "-j", img], capture_output=True, text=True).stdout
            for line in out.splitlines():
                subprocess.run(["losetup", "-d", line.split(":")[0]], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def report(self):
        def fmt(s):
            return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"

        def fs_of(what):
            return what[what.rindex("(") + 1:-1].split(", ")[-1]
        ref = {(r["dataset"], fs_of(r["what"])): r["median"] for r in self.rows
               if r["what"].startswith("cp -a (")}
        rm = {(r["dataset"], fs_of(r["what"])): r["median"] for r in self.rows
              if r["what"].startswith("teardown: rm -rf")}
        lines = [BEGIN, "## Storage: clone and teardown of copy-on-write volumes", ""]
        self.when = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
        lines.append(f"Run {self.when} by `bench/storage.py BUILD` (root), commit "
                     f"{benchlib.commit()}. " + machine())
        lines.append("")
        lines.append("Datasets (generated once into a btrfs volume, copied to the other pools): "
                     + "; ".join(f"{n}: {self.sizes[n] / (1 << 20):.0f} MiB in "
                                 f"{self.files[n]} files" for n in self.names()) + ". "
                     "Trees are 10% 4-64 KiB files and four large files; pg-* are PostgreSQL 15 "
                     "data dirs from `pgbench -i -s 7` / `-s 70`, cleanly stopped.")
        lines.append("")
        lines.append("Pools: btrfs = `branchbox pool init --driver btrfs` (sparse loop image, "
                     "qgroups on); reflink = `--driver reflink --path` an XFS "
                     "(`mkfs.xfs -m reflink=1`) loop mount; copy = `--driver copy` on ext4. "
                     "Per dataset, the commands run interleaved (one run of each per round, the "
                     "order rotated every round, after warm-up rounds); before each run its "
                     "prepare step destroys the previous clone and waits for the space (btrfs "
                     "cleaner, `sync`) so no run pays for the one before; page cache warm; "
                     "median (min-max) of N runs. \"vs cp -a, same fs\" is the median of a plain "
                     "`cp -a` (`--reflink=never`) on the same filesystem over this median "
                     "(teardown rows: over `rm -rf` on the same filesystem); the filesystem is in "
                     "each row's label.")
        lines.append("")
        lines.append(NOTE)
        lines.append("")
        lines.append("| dataset | what | median | min | max | runs | vs cp -a, same fs |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in self.rows:
            base = rm if r["what"].startswith("teardown") else ref
            ratio = base.get((r["dataset"], fs_of(r["what"])))
            ratio = f"{ratio / r['median']:.1f}x" if ratio else "-"
            lines.append(f"| {r['dataset']} | {r['what']} | {fmt(r['median'])} | "
                         f"{fmt(r['min'])} | {fmt(r['max'])} | {r['runs']} | {ratio} |")
        lines.append("")
        lines.append("Commands (paths shortened):")
        lines.append("")
        seen = set()
        for r in self.rows:
            c = r["cmd"].replace(self.base, "$B").replace(self.bin, "branchbox")
            key = (r["what"])
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"- {r['what']}: `{c}`")
        hist = f"- {self.when}, commit {benchlib.commit()}: " + "; ".join(
            f"{r['dataset']} {r['what']} {fmt(r['median'])}" for r in self.rows
            if r["what"] in ("branchbox volume snapshot (btrfs)", "cp -a (btrfs)"))
        return lines[1:], hist


def machine():
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return (f"Machine: {os.cpu_count()} cores, {mem / (1 << 30):.0f} GiB, Linux "
            f"{platform.release()}, state on {fs_type('/var/tmp')}.")


def fs_type(path):
    return sh(["stat", "-f", "-c", "%T", path]).strip()


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("storage bench: needs root (loop devices, mounts)", file=sys.stderr)
        return 1
    bench = Bench(sys.argv[1])
    try:
        bench.setup()
        bench.datasets()
        bench.sizes = {n: bench.dataset_bytes(n) for n in bench.names()}
        bench.run()
        lines, hist = bench.report()
    finally:
        bench.cleanup()
    if QUICK:  # a check of the script itself: printed, not recorded
        print("\n".join(lines), file=sys.stderr)
        return 0
    benchlib.write_section("storage", lines, hist, SEED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
