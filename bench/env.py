#!/usr/bin/python3
"""Benchmark environments; prints one Markdown section for bench/run.

Usage: bench/env.py BUILD_DIR [--previews N]

1. Production of examples/todo is deployed, then its database grows to ~100 MiB and ~2 GiB.
   At each size: `branchbox env create` (snapshot + new credentials + sanitize + hooks + app
   healthy) timed over several runs, next to production's own cold start (`env stop` +
   `env start` of production: the same services and app starting on the same data) and next
   to `env destroy` (teardown, with the space reclaimed).
2. Density: N idle previews (PostgreSQL + Redis + app each) are created one after another; the
   memory charged to their cgroups is read, and the machine's capacity is the available memory
   divided by the per-preview figure.
"""
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


class Bench:
    def __init__(self, build):
        self.bin = os.path.join(os.path.abspath(build), "src", "cli", "branchbox")
        self.tmp = tempfile.mkdtemp(prefix="bbx-bench-env-", dir="/var/tmp")
        self.state = os.path.join(self.tmp, "state")
        self.repo = os.path.join(self.tmp, "repo")
        self.env = dict(os.environ, BRANCHBOX_STATE=self.state)
        self.daemon = None

    def bb(self, *args, timeout=1800):
        return subprocess.run([self.bin, *args], env=self.env, check=True, capture_output=True,
                              text=True, timeout=timeout)

    def timed(self, *args):
        t = time.monotonic()
        self.bb(*args)
        return time.monotonic() - t

    def start(self):
        sh(os.path.join(ROOT, "examples", "todo", "make-repo.sh"), self.repo)
        self.log = open(os.path.join(self.tmp, "daemon.log"), "w")
        self.daemon = subprocess.Popen([self.bin, "serve", "--repo", self.repo, "--state", self.state,
                                        "--no-listen"], stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(os.path.join(self.state, "branchbox.sock")):
                break
            time.sleep(0.05)
        self.bb("deploy")

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        mounts = [l.split()[4] for l in open("/proc/self/mountinfo") if l.split()[4].startswith(self.tmp)]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def grow(self, mib):
        """Grow production's database to about mib MiB of table data."""
        sql = ("CREATE TABLE IF NOT EXISTS filler (id bigserial primary key, payload text);"
               "INSERT INTO filler (payload) SELECT repeat(md5(g::text), 30) FROM generate_series(1, %d) g;"
               "CHECKPOINT;" % (mib * 1024 * 1024 // 1000))
        code = ("import os,psycopg2,sys;c=psycopg2.connect(os.environ['DATABASE_URL']);c.autocommit=True;"
                "cur=c.cursor();[cur.execute(s) for s in sys.argv[1].split(';') if s.strip() and s.strip()!='CHECKPOINT']")
        self.bb("env", "exec", "main", "--timeout", "3600", "--", "python3", "-c", code, sql)
        code2 = ("import os,psycopg2;c=psycopg2.connect(os.environ['DATABASE_URL']);cur=c.cursor();"
                 "cur.execute('SELECT pg_database_size(current_database())');print(cur.fetchone()[0])")
        return int(self.bb("env", "exec", "main", "--", "python3", "-c", code2).stdout.strip())

    def env_cgroup_memory(self, name):
        total = 0
        for pat in ("/sys/fs/cgroup/memory/branchbox/d-*/env-%s/*", "/sys/fs/cgroup/branchbox/d-*/env-%s/*"):
            for d in glob.glob(pat % name):
                for f in ("memory.usage_in_bytes", "memory.current"):
                    p = os.path.join(d, f)
                    if os.path.exists(p):
                        total += int(open(p).read())
                        break
        return total


def fmt(xs):
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    build = sys.argv[1]
    n_previews = 50
    if "--previews" in sys.argv:
        n_previews = int(sys.argv[sys.argv.index("--previews") + 1])
    runs = 5
    b = Bench(build)
    rows = []
    density = None
    try:
        b.start()
        for target in (100, 2048):
            size = b.grow(target - (rows[-1][1] // (1 << 20) if rows else 0))
            creates, destroys, colds = [], [], []
            sh("git", "-C", b.repo, "branch", "-f", "bench-pr", "main")
            b.bb("env", "create", "bench-pr")  # warm-up
            b.bb("env", "destroy", "bench-pr")
            for _ in range(runs):
                creates.append(b.timed("env", "create", "bench-pr"))
                destroys.append(b.timed("env", "destroy", "bench-pr"))
                t = time.monotonic()
                b.bb("env", "stop", "main")
                b.bb("env", "start", "main")
                colds.append(time.monotonic() - t)
            rows.append((f"{target} MiB target", size, creates, colds, destroys))
        # Density.
        sh("git", "-C", b.repo, "branch", "-f", "idle", "main")
        mems, made, t_all = [], 0, time.monotonic()
        for i in range(n_previews):
            name = f"idle-{i}"
            sh("git", "-C", b.repo, "branch", "-f", name, "main")
            try:
                b.bb("env", "create", name)
            except subprocess.CalledProcessError as e:
                print(f"bench env: preview {i} failed: {e.stderr.strip()}", file=sys.stderr)
                break
            made += 1
        time.sleep(5)
        for i in range(made):
            mems.append(b.env_cgroup_memory(f"idle-{i}"))
        avail = int(re.search(r"MemAvailable:\s+(\d+)", open("/proc/meminfo").read()).group(1)) * 1024
        total = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) * 1024
        density = (made, statistics.median(mems) if mems else 0, avail, total, time.monotonic() - t_all)
    finally:
        b.stop()

    uname = platform.uname()
    print("## Environments: preview create-to-healthy, teardown, density\n")
    print(f"Machine: {os.cpu_count()} CPUs, {round(total / (1 << 30))} GiB, kernel {uname.release}; btrfs loop pool "
          "created by the daemon; release build. Method: `bench/env.sh BUILD` (bench/env.py): production of "
          "examples/todo deployed, its PostgreSQL grown with a filler table, then per size "
          f"{runs} runs (after one warm-up) of `branchbox env create bench-pr` (CHECKPOINT of production, "
          "btrfs snapshot, new credentials, sanitize SQL, build + deploy hooks, app healthy over HTTP), "
          "`env destroy` (processes, cgroups, netns, volume with the space reclaimed), and production's own "
          "cold start on the same data (`env stop main` + `env start main`). Median (min-max).\n")
    print("| production data (pg_database_size) | preview create-to-healthy | production cold start | ratio | teardown |")
    print("|---|---:|---:|---:|---:|")
    for label, size, c, cold, d in rows:
        print(f"| {size / (1 << 20):.0f} MiB | {fmt(c)} | {fmt(cold)} | {statistics.median(c) / statistics.median(cold):.2f}x | {fmt(d)} |")
    if density:
        made, per, avail, total, took = density
        cap = int((avail + made * per) / per) if per else 0
        print()
        print(f"Density: {made} idle previews (PostgreSQL + Redis + app each) created in {took:.0f} s; memory charged "
              f"to each preview's cgroups: median {per / (1 << 20):.1f} MiB; with {avail / (1 << 30):.1f} GiB still "
              f"available at {made} previews, this {total / (1 << 30):.0f} GiB machine holds about **{cap}** idle previews.")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
