#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Density: create up to N idle previews of examples/todo (PostgreSQL + Redis + app each) on
one daemon, one after another, and measure them all running at once.

Usage: bench/density.py BUILD_DIR [N]   (root; N defaults to 200; rewrites the density
section of bench/RESULTS.md)

Reported: how many previews ran at once and, if fewer than N, what stopped the run (the
failing command's error, or the memory floor below); `env create` time of each preview (the
first, the last, min/median/max); PSS per preview (sum of /proc/PID/smaps_rollup Pss over
every process in the preview's cgroups: shared pages split between their users) and the
memory charged to its cgroups, min/median/max; the daemon's RSS and open fds at the end;
MemAvailable before and after.

The machine is shared: creation stops when MemAvailable falls under MEM_FLOOR_MIB (2048),
so other work keeps room. N under 10 checks the script: printed, not recorded. Everything is torn down on exit, on Ctrl-C and on SIGTERM: the
daemon is stopped, `branchbox down --state` removes its cgroups, netns and mounts, the
temporary directory goes.
"""
import datetime
import glob
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

MEM_FLOOR_MIB = int(os.environ.get("MEM_FLOOR_MIB", "2048"))
TARGET = 200
DB_DISK, CACHE_DISK = "192M", "64M"  # services' disks in production's config (see start())


def log(msg):
    print(f"density bench: {msg}", file=sys.stderr, flush=True)


def meminfo(key):
    return int(re.search(rf"{key}:\s+(\d+)", open("/proc/meminfo").read()).group(1)) * 1024


class Density:
    def __init__(self, build):
        self.bin = os.path.join(os.path.abspath(build), "src", "cli", "branchbox")
        self.tmp = tempfile.mkdtemp(prefix="bbx-bench-density-", dir="/var/tmp")
        self.state = os.path.join(self.tmp, "state")
        self.repo = os.path.join(self.tmp, "repo")
        self.env = dict(os.environ, BRANCHBOX_STATE=self.state)
        self.daemon = None
        self.log = None

    def bb(self, *args, timeout=600):
        return subprocess.run([self.bin, *args], env=self.env, check=True, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, n):
        subprocess.run([os.path.join(benchlib.ROOT, "examples", "todo", "make-repo.sh"),
                        self.repo], check=True, capture_output=True)
        # What a preview may write is the sum of its services' disks (1 GiB + the 1 GiB
        # default), and admission keeps the pool's reserve for production free of what every
        # preview may still write: 200 of them at 2 GiB would need a 450 GiB pool. Production's
        # config here gives its services the disks such a fleet of idle previews needs.
        cfg = os.path.join(self.repo, ".branchbox", "config.yaml")
        text = open(cfg).read()
        assert "    disk: 1G\n" in text and "    type: \"redis:7.0\"\n" in text, cfg
        text = text.replace("    disk: 1G\n", f"    disk: {DB_DISK}\n", 1)
        text = text.replace("    type: \"redis:7.0\"\n",
                            f"    type: \"redis:7.0\"\n    disk: {CACHE_DISK}\n", 1)
        open(cfg, "w").write(text)
        git_env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@invalid",
                       GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@invalid",
                       GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
        subprocess.run(["git", "-C", self.repo, "commit", "-q", "-am",
                        "services: disks sized for many idle previews"],
                       check=True, capture_output=True, env=git_env)
        self.log = open(os.path.join(self.tmp, "daemon.log"), "w")
        # The daemon's own ceiling on previews (default 20) is an operator's choice, not what
        # the machine holds: raised to the number asked for.
        self.daemon = subprocess.Popen([self.bin, "serve", "--repo", self.repo, "--state",
                                        self.state, "--no-listen", "--max-previews", str(n)],
                                       stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(1200):
            if self.daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.daemon.returncode})")
            if os.path.exists(os.path.join(self.state, "branchbox.sock")) and \
                    "daemon ready" in open(os.path.join(self.tmp, "daemon.log")).read():
                break
            time.sleep(0.05)
        self.bb("deploy")

    def preview_dir(self, name):
        """This daemon's cgroup of the preview (other daemons' leftovers may share the name):
        the one with processes in it."""
        for pat in ("/sys/fs/cgroup/memory/branchbox/d-*/env-%s", "/sys/fs/cgroup/branchbox/d-*/env-%s"):
            for d in glob.glob(pat % name):
                if self.pids_below(d):
                    return d
        return None

    @staticmethod
    def pids_below(d):
        pids = set()
        for f in glob.glob(os.path.join(d, "**", "cgroup.procs"), recursive=True):
            try:
                pids.update(int(x) for x in open(f).read().split())
            except OSError:
                pass
        return pids

    def preview_pids(self, name):
        d = self.preview_dir(name)
        return self.pids_below(d) if d else set()

    def preview_pss(self, name):
        total = 0
        for pid in self.preview_pids(name):
            try:
                m = re.search(r"^Pss:\s+(\d+)", open(f"/proc/{pid}/smaps_rollup").read(), re.M)
                total += int(m.group(1)) * 1024 if m else 0
            except OSError:
                pass
        return total

    def preview_charged(self, name):
        d = self.preview_dir(name)
        for f in ("memory.usage_in_bytes", "memory.current"):
            if d and os.path.exists(os.path.join(d, f)):
                return int(open(os.path.join(d, f)).read())
        return 0

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=600)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        if os.path.isdir(self.state):
            subprocess.run([self.bin, "down", "--state", self.state], env=self.env,
                           capture_output=True, timeout=600)
        mounts = [l.split()[4] for l in open("/proc/self/mountinfo")
                  if l.split()[4].startswith(self.tmp)]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        if os.environ.get("DENSITY_KEEP"):
            log(f"kept {self.tmp}")
            return
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        log("needs root")
        return 1
    n = int(sys.argv[2]) if len(sys.argv) == 3 else TARGET

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    started = datetime.datetime.now(datetime.timezone.utc)
    avail0 = meminfo("MemAvailable")
    d = Density(sys.argv[1])
    times, made, stopped_by, interrupted = [], [], None, False
    result = None
    t_all = time.monotonic()
    try:
        d.start(n)
        for i in range(n):
            avail = meminfo("MemAvailable")
            if avail < MEM_FLOOR_MIB << 20:
                stopped_by = (f"MemAvailable {avail >> 20} MiB, under the {MEM_FLOOR_MIB} MiB "
                              "floor this script keeps for the other work on the machine")
                break
            name = f"idle-{i}"
            subprocess.run(["git", "-C", d.repo, "branch", "-f", name, "main"], check=True,
                           capture_output=True)
            t = time.monotonic()
            try:
                d.bb("env", "create", name)
            except subprocess.CalledProcessError as e:
                msg = " ".join(e.stderr.split())[-400:]
                stopped_by = f"preview {i + 1}: `env create` failed: {msg}"
                break
            except subprocess.TimeoutExpired:
                stopped_by = f"preview {i + 1}: `env create` did not finish in 600 s"
                break
            times.append(time.monotonic() - t)
            made.append(name)
            if (i + 1) % 20 == 0:
                log(f"{i + 1} previews, last create {times[-1]:.2f} s, "
                    f"MemAvailable {meminfo('MemAvailable') >> 20} MiB")
        took = time.monotonic() - t_all
        time.sleep(5)  # idle: let start-up work settle
        pss = [d.preview_pss(x) for x in made]
        charged = [d.preview_charged(x) for x in made]
        procs = sum(len(d.preview_pids(x)) for x in made)
        dpid = d.daemon.pid
        rss = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{dpid}/status").read()).group(1)) * 1024
        fds = len(os.listdir(f"/proc/{dpid}/fd"))
        avail1 = meminfo("MemAvailable")
        result = dict(pss=pss, charged=charged, procs=procs, rss=rss, fds=fds, avail1=avail1,
                      took=took)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: tearing down")
    finally:
        t = time.monotonic()
        d.stop()
        teardown = time.monotonic() - t
        log(f"torn down in {teardown:.0f} s")
    if interrupted or result is None:
        return 1

    when = started.strftime("%Y-%m-%d %H:%M UTC")
    commit = benchlib.commit()
    mib = lambda b: f"{b / (1 << 20):.1f}"
    count = len(made)
    verdict = "meets" if count >= TARGET else "MISSES"
    L = ["## Density: idle previews running at once", "",
         f"Run {when} by `bench/density.py BUILD {n}`, commit {commit}. Machine: "
         f"{benchlib.machine()}, shared with other work (MemAvailable "
         f"{avail0 >> 20} MiB at the start). One daemon, btrfs loop pool made by the daemon, "
         f"production of examples/todo deployed (its config's service disks set to "
         f"{DB_DISK} for PostgreSQL and {CACHE_DISK} for Redis, so each preview may write "
         f"{DB_DISK} + {CACHE_DISK}), then previews created one after another with "
         "`branchbox env create idle-N` (each: PostgreSQL, Redis and the app, healthy), and all "
         "of them measured together while idle, 5 s after the last one.", "",
         f"**{count} of {n} previews running at once ({verdict} the {TARGET} target).**" +
         (f" Stopped by: {stopped_by}." if stopped_by else ""), "",
         "| what | min | median | max |", "|---|---:|---:|---:|",
         f"| `env create` time, s | {min(times):.2f} | {statistics.median(times):.2f} | "
         f"{max(times):.2f} |",
         f"| PSS per preview, MiB (all its processes) | {mib(min(result['pss']))} | "
         f"{mib(statistics.median(result['pss']))} | {mib(max(result['pss']))} |",
         f"| memory charged to its cgroups, MiB | {mib(min(result['charged']))} | "
         f"{mib(statistics.median(result['charged']))} | {mib(max(result['charged']))} |", "",
         f"Create time of the first preview {times[0]:.2f} s, of the last ({count}th) "
         f"{times[-1]:.2f} s; all {count} in {result['took']:.0f} s. {result['procs']} processes "
         f"in the previews' cgroups. The daemon at the end: RSS {mib(result['rss'])} MiB, "
         f"{result['fds']} open fds. MemAvailable {result['avail1'] >> 20} MiB with all of them "
         f"running (from {avail0 >> 20} MiB). Teardown of everything: {teardown:.0f} s."]
    hist = (f"- {when}, commit {commit}: **{count} of {n}** running ({verdict} {TARGET})"
            + (f", stopped by: {stopped_by[:160]}" if stopped_by else "") +
            f"; create {times[0]:.2f} s first, {times[-1]:.2f} s last, median "
            f"{statistics.median(times):.2f} s; PSS median {mib(statistics.median(result['pss']))}"
            f" MiB; daemon RSS {mib(result['rss'])} MiB, {result['fds']} fds")
    seed = ["- 2026-11-29, earlier `bench/env.py` (commit not recorded): 50 previews created, "
            "then about 548 extrapolated from memory charged (41.9 MiB each): not a measurement "
            "of previews running at once"]
    if n < 10:  # a check of the script itself, not a density figure: printed, not recorded
        print("\n".join(L), file=sys.stderr)
        return 0
    benchlib.write_section("density", L, hist, seed)
    log(hist[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
