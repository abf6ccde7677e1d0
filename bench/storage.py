#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Clone and teardown times of copy-on-write volumes, side by side with cp -a.

Usage: bench/storage.py BUILD_DIR   (root; rewrites the storage section of bench/RESULTS.md)

Datasets: 100 MiB, 1 GiB and 10 GiB trees (10% of the bytes in 4-64 KiB files, the rest in
four large files) and real PostgreSQL data dirs from `pgbench -i -s 7` and `-s 70`. Each is
generated once into a btrfs volume of a loop-backed pool made by `branchbox pool init`, and
copied to an XFS (reflink=1) loop pool and an ext4 copy pool. Every figure comes from
hyperfine in the same run: median, min and max, and the ratio to `cp -a` on ext4.
BENCH_QUICK=1 uses 10/20/40 MiB datasets to check the script itself.
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
        sh(["mount", "-o", "loop", self.xfs_img, self.xfs_mnt])
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
    def hyperfine(self, cmd, prepare, runs, warmup=1, shell=False):
        out = os.path.join(self.base, "hf.json")
        args = ["hyperfine", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
                "--export-json", out, "--prepare", f"sh -c '{prepare}'"]
        if not shell:
            args.append("-N")
        sh(args + [cmd])
        with open(out) as f:
            r = json.load(f)["results"][0]
        return {"median": r["median"], "min": r["min"], "max": r["max"], "runs": len(r["times"])}

    def measure(self, name, what, cmd, prepare, runs, warmup=1, shell=False):
        log(f"{name}: {what}")
        r = self.hyperfine(cmd, prepare, runs, warmup, shell)
        r.update(dataset=name, what=what, cmd=cmd)
        self.rows.append(r)

    def run(self):
        b = self.bin
        for name in self.names():
            v = name.lower()
            big = name.endswith("10G")
            slow_runs, slow_warm = (2, 0) if big else (3, 1) if name.endswith("1G") else (5, 1)
            bs, xs, cs = self.btrfs_state, self.xfs_state, self.copy_state
            self.measure(name, "branchbox volume snapshot (btrfs)",
                         f"{b} volume snapshot {v} clone --state {bs}",
                         f"{b} volume destroy --sync clone --state {bs} >/dev/null 2>&1; true", 10, 2)
            mnt = os.path.dirname(self.broot)
            self.measure(name, "btrfs subvolume snapshot",
                         f"btrfs subvolume snapshot {self.broot}/{v} {mnt}/bclone",
                         f"btrfs subvolume delete -c {mnt}/bclone >/dev/null 2>&1; "
                         f"btrfs subvolume sync {mnt} >/dev/null 2>&1; true", 10, 2)
            self.measure(name, "branchbox volume snapshot (reflink, XFS)",
                         f"{b} volume snapshot {v} clone --state {xs}",
                         f"{b} volume destroy --sync clone --state {xs} >/dev/null 2>&1; true",
                         3 if big else 5, 1)
            self.measure(name, "cp -a --reflink=always (XFS)",
                         f"cp -a --reflink=always {self.xroot}/{v} {self.xfs_mnt}/rclone",
                         f"rm -rf {self.xfs_mnt}/rclone; sync", 3 if big else 5, 1)
            self.measure(name, "branchbox volume snapshot (copy, ext4)",
                         f"{b} volume snapshot {v} clone --state {cs}",
                         f"{b} volume destroy --sync clone --state {cs} >/dev/null 2>&1; true",
                         slow_runs, slow_warm)
            self.measure(name, "cp -a (ext4)", f"cp -a {self.croot}/{v} {self.ext4}/clone",
                         f"rm -rf {self.ext4}/clone; sync", slow_runs, slow_warm)
            sh(f"rm -rf {self.ext4}/clone; {b} volume destroy clone --state {cs} || true;"
               f"{b} volume destroy clone --state {bs} || true")
            if name in ("1G", "10G", "pg-1G") or (QUICK and name == "1G"):
                self.measure(name, "teardown: branchbox volume destroy --sync (btrfs)",
                             f"{b} volume destroy --sync tclone --state {bs}",
                             f"{b} volume snapshot {v} tclone --state {bs} >/dev/null; sync", 5, 1)
                self.measure(name, "teardown: rm -rf (ext4)", f"rm -rf {self.ext4}/tclone",
                             f"cp -a {self.croot}/{v} {self.ext4}/tclone; sync", 2 if big else 3, 0)

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

        ref = {r["dataset"]: r["median"] for r in self.rows if r["what"] == "cp -a (ext4)"}
        rm = {r["dataset"]: r["median"] for r in self.rows if r["what"].endswith("rm -rf (ext4)")}
        lines = [BEGIN, "## Storage: clone and teardown of copy-on-write volumes", ""]
        lines.append(f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
                     "`bench/storage.py BUILD` (root). " + machine())
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
                     "hyperfine, `--prepare` destroys the previous clone and waits for the space (btrfs "
                     "cleaner, `sync`) so no run pays for the one before; page cache warm; median (min-max) of "
                     "N runs; \"vs cp -a\" is the cp -a median over this median "
                     "(teardown rows: over the rm -rf median).")
        lines.append("")
        lines.append(NOTE)
        lines.append("")
        lines.append("| dataset | what | median | min | max | runs | vs cp -a |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in self.rows:
            base = rm if r["what"].startswith("teardown") else ref
            ratio = base.get(r["dataset"])
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
        lines.append(END)
        return "\n".join(lines) + "\n"


def machine():
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return (f"Machine: {os.cpu_count()} cores, {mem / (1 << 30):.0f} GiB, Linux "
            f"{platform.release()}, state on {fs_type('/var/tmp')}.")


def fs_type(path):
    return sh(["stat", "-f", "-c", "%T", path]).strip()


def write_results(section):
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            text = f.read()
    else:
        text = ("# branchbox benchmark results\n\nWritten by `make bench` (bench/run). "
                + machine() + " Each benchmark rewrites only its own section.\n\n")
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(RESULTS, "w") as f:
        f.write(text)


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
        section = bench.report()
    finally:
        bench.cleanup()
    write_results(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
