#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Sandbox start-to-exit of /bin/true, side by side with bubblewrap (closest flags), unshare(1)
and a plain fork/exec, interleaved in one run; where the time goes (per-stage timestamps from
a -Dbench_stages=true build); and the daemon's own in-process spawn path next to fork/exec.

Usage: bench/sandbox.py BUILD_DIR   (root; rewrites the sandbox section of bench/RESULTS.md)
Env: ROUNDS (30), STAGE_RUNS (30), SPAWN_ROUNDS (30); BEFORE=DIR adds a column for another
-Dbench_stages=true build's `branchbox sandbox run` to the breakdown (e.g. an older commit).

Every run is timed here: os.posix_spawn, then os.wait4 for wall time (perf_counter) and CPU
time (user + system of the process and every descendant it reaped; each command here reaps
its whole tree). A round runs each command once, the order rotated every round, after three
warm-up rounds; the per-round ratio pairs each command with the bwrap run of the same round.
"""
import datetime
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "30"))
STAGE_RUNS = int(os.environ.get("STAGE_RUNS", "30"))
SPAWN_ROUNDS = int(os.environ.get("SPAWN_ROUNDS", "30"))
WARMUP = 3
TARGET = 1.0
BWRAP = ("bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --ro-bind /usr /usr "
         "--symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 "
         "--symlink usr/sbin /sbin --proc /proc --dev /dev --tmpfs /tmp /bin/true")
SEED = [
    "- 2026-11-29, before this history was kept (commit not recorded; `bench/sandbox.sh`, "
    "hyperfine rounds): `branchbox sandbox run` 30.24 ms, bwrap 10.36 ms, **2.92x** "
    "(MISSES 1.0x); CPU 2.49x",
    "- earlier, on another machine (reported in issue 14): `branchbox sandbox run` 0.81x of "
    "bwrap with bwrap at 31 ms; measured again on a machine of the same kind, 20 interleaved "
    "pairs: 10.6 ms vs 3.4 ms, **3.1x** (MISSES 1.0x), CPU 4.9x",
]
STAGES = ["main", "prune", "plan", "cgroup", "clone", "child", "attach", "go", "ns", "rootfs",
          "pivot", "landlock", "confine", "execed", "exited", "removed", "end"]
STAGE_TEXT = {
    "main": "main() entered: exec and dynamic loading done",
    "prune": "stale cgroups pruned (old order: before the spawn)",
    "plan": "plan built (paths, /etc, argv, BPF copy, init fd)",
    "cgroup": "cgroup made with its limits (v1: tasks files opened)",
    "clone": "clone(NEWNS|NEWPID|NEWIPC|NEWUTS|NEWNET) returned in the parent",
    "child": "child running",
    "attach": "parent: child in its cgroup (old: pid to cgroup.procs), go written",
    "go": "child: go read",
    "ns": "child: loopback up, hostname set",
    "rootfs": "child: tmpfs root, binds, /etc, /proc, /sys, /dev, /tmp",
    "pivot": "child: root read-only, pivot_root, old root detached",
    "landlock": "child: Landlock ruleset built",
    "confine": "child: cgroup ns, rlimits, caps, uid, no_new_privs, Landlock, seccomp",
    "execed": "parent: init exec'd, forked and exec'd the command",
    "exited": "parent: init reaped (command ran, namespaces torn down)",
    "removed": "parent: cgroup removed",
    "end": "about to exit",
}


def log(msg):
    print(f"sandbox bench: {msg}", file=sys.stderr, flush=True)


def run(argv, env=None):
    """(wall ns, cpu ns, status) of one run, stdio to /dev/null (stderr kept when env)."""
    null = os.open("/dev/null", os.O_RDWR)
    acts = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)]
    if env is None:
        acts.append((os.POSIX_SPAWN_DUP2, null, 2))
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env if env is not None else os.environ,
                         file_actions=acts)
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter_ns()
    os.close(null)
    return t1 - t0, int((ru.ru_utime + ru.ru_stime) * 1e9), os.waitstatus_to_exitcode(status)


def ensure_stage_build(build):
    stages = os.path.join(benchlib.ROOT, "build-bench-stages")
    if not os.path.isdir(stages):
        bt = subprocess.run(["meson", "introspect", "--buildoptions", build], capture_output=True,
                            text=True).stdout
        import json
        opts = {o["name"]: o["value"] for o in json.loads(bt)}
        subprocess.run(["meson", "setup", stages, "-Dbench_stages=true", "-Dtests=false",
                        f"-Dbuildtype={opts['buildtype']}", "-Db_ndebug=false"],
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", stages, "src/cli/branchbox", "src/cli/branchbox-cli",
                    "src/sandbox/branchbox-init", "src/sandbox/sandbox-spawn-bench"], check=True,
                   stdout=subprocess.DEVNULL)
    return stages


def interleaved(cmds):
    times = {k: [] for k, _ in cmds}
    cpu = {k: [] for k, _ in cmds}
    per_round = []
    for i in range(WARMUP + ROUNDS):
        order = cmds[i % len(cmds):] + cmds[:i % len(cmds)]
        this = {}
        for name, argv in order:
            w, c, st = run(argv)
            if st != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {st}")
            this[name] = (w, c)
        if i >= WARMUP:
            for k, (w, c) in this.items():
                times[k].append(w / 1e6)
                cpu[k].append(c / 1e6)
            per_round.append(this)
    return times, cpu, per_round


def stage_runs(variants):
    """variants: [(label, argv)]; STAGE_RUNS runs of each, alternating. -> {label: [dict]}"""
    out = {label: [] for label, _ in variants}
    for i in range(STAGE_RUNS + 1):
        for label, argv in variants:
            env = dict(os.environ, BRANCHBOX_BENCH_STAGES="1")
            r, w = os.pipe()
            env["BRANCHBOX_BENCH_T0"] = str(time.monotonic_ns())
            pid = os.posix_spawn(argv[0], argv, env, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDWR, 0),
                (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_RDWR, 0),
                (os.POSIX_SPAWN_DUP2, w, 2)])
            os.close(w)
            data = b""
            while chunk := os.read(r, 65536):
                data += chunk
            os.close(r)
            os.waitpid(pid, 0)
            line = [l for l in data.decode().splitlines() if l.startswith("bench-stages:")]
            if not line:
                raise RuntimeError(f"{label}: no stage line: {data.decode()}")
            d = {k: int(v) for k, v in (x.split("=") for x in line[0].split()[1:])}
            if i > 0:
                out[label].append(d)
    return out


def spawn_bench(stages):
    exe = os.path.join(stages, "src", "sandbox", "sandbox-spawn-bench")
    os.makedirs("/run/branchbox", exist_ok=True)
    ns = f"/run/branchbox/bench-netns-{os.getpid()}"
    p = subprocess.run([exe, str(SPAWN_ROUNDS), ns], capture_output=True, text=True,
                       env=dict(os.environ, BRANCHBOX_BENCH_STAGES="1"))
    if p.returncode != 0:
        raise RuntimeError(f"sandbox-spawn-bench failed: {p.stderr}")
    res = {}
    for l in p.stdout.splitlines():
        name, w, c = l.split()
        res.setdefault(name, ([], []))
        res[name][0].append(int(w) / 1e6)
        res[name][1].append(int(c) / 1e6)
    stages = {}
    for l in p.stderr.splitlines():
        name, _, rest = l.partition(" bench-stages: ")
        if rest:
            d = {k: int(v) for k, v in (x.split("=") for x in rest.split())}
            stages.setdefault(name, []).append(d)
    return res, stages


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        log("needs root")
        return 1
    build = os.path.abspath(sys.argv[1])
    started = datetime.datetime.now(datetime.timezone.utc)
    subprocess.run(["ninja", "-C", build, "src/cli/branchbox", "src/cli/branchbox-cli",
                    "src/sandbox/branchbox-init"], check=True, stdout=subprocess.DEVNULL)
    stages = ensure_stage_build(build)
    cli = os.path.join(build, "src", "cli", "branchbox")
    full = os.path.join(build, "src", "cli", "branchbox-cli")
    which = lambda t: subprocess.run(["which", t], capture_output=True, text=True).stdout.strip()
    cmds = [
        ("branchbox sandbox run", [cli, "sandbox", "run", "--", "/bin/true"]),
        ("branchbox-cli sandbox run", [full, "sandbox", "run", "--", "/bin/true"]),
        ("branchbox sandbox run + memory/pids/cpu limits",
         [cli, "sandbox", "run", "--memory", "256M", "--pids", "64", "--cpu", "1", "--",
          "/bin/true"]),
        ("bwrap", [which("bwrap")] + BWRAP.split()[1:]),
        ("unshare", [which("unshare"), "-p", "-f", "-n", "-m", "-i", "-u", "--mount-proc",
                     "/bin/true"]),
        ("fork/exec", ["/bin/true"]),
        ("branchbox version (front + branchbox-cli start only)", [cli, "version"]),
    ]
    load0 = benchlib.load()
    log(f"{ROUNDS} interleaved rounds of {len(cmds)} commands")
    times, cpu, per_round = interleaved(cmds)
    log(f"stage breakdown, {STAGE_RUNS} runs each")
    variants = [("branchbox sandbox run", [os.path.join(stages, "src/cli/branchbox"), "sandbox",
                                           "run", "--", "/bin/true"]),
                ("branchbox-cli sandbox run", [os.path.join(stages, "src/cli/branchbox-cli"),
                                               "sandbox", "run", "--", "/bin/true"])]
    before = os.environ.get("BEFORE")
    if before:
        variants.append(("before: branchbox sandbox run",
                         [os.path.join(before, "src/cli/branchbox"), "sandbox", "run", "--",
                          "/bin/true"]))
    st = stage_runs(variants)
    log(f"in-process spawn, {SPAWN_ROUNDS} rounds")
    sp, sp_stages = spawn_bench(stages)
    load1 = benchlib.load()

    bw = statistics.median(times["bwrap"])
    bw_cpu = statistics.median(cpu["bwrap"])
    bwv = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    when = started.strftime("%Y-%m-%d %H:%M UTC")
    commit = benchlib.commit()
    L = ["## Sandbox start-to-exit latency (/bin/true)", "",
         f"Run {when} by `bench/sandbox.py BUILD` (bench/sandbox.sh), commit {commit}, "
         f"{os.path.basename(build)} build. Machine: {benchlib.machine()}; cgroups as found "
         f"(v1 here: memory, pids, cpu, freezer, cpuacct hierarchies); {bwv}. Load average "
         f"{load0} at the start, {load1} at the end (2 CPUs shared with other work: absolute "
         "times move, compare within the run).", "",
         f"Method: {ROUNDS} rounds after {WARMUP} warm-up rounds; a round runs every command "
         "once, the order rotated each round. Wall time from posix_spawn to wait4; CPU is "
         "user + system of the process and every descendant it reaped (wait4 rusage). "
         "\"per-round ratio\" pairs each run with the bwrap run of the same round.", "",
         "| Command | median ms | min ms | max ms | vs bwrap (medians) | per-round ratio, median (min-max) | CPU ms, median | CPU vs bwrap |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, _ in cmds:
        t = times[name]
        med = statistics.median(t)
        pr = [r[name][0] / r["bwrap"][0] for r in per_round]
        c = statistics.median(cpu[name])
        L.append(f"| {name} | {med:.2f} | {min(t):.2f} | {max(t):.2f} | {med / bw:.2f}x | "
                 f"{benchlib.spread(pr)}x | {c:.2f} | {c / bw_cpu:.2f}x |")
    L += ["", "Commands (`branchbox` and `branchbox-cli` from the build dir):", ""]
    for name, argv in cmds:
        shown = " ".join(os.path.basename(argv[0]) if i == 0 else a for i, a in enumerate(argv))
        L.append(f"- {name}: `{shown}`")
    L += ["",
          "`branchbox` is a small static binary (libc, libbasic, libsandbox) that runs the "
          "sandbox verb itself and execs `branchbox-cli` (the rest of the CLI and the daemon, "
          "35 shared libraries) for every other verb; the `branchbox-cli sandbox run` row is "
          "the same sandbox code started from that binary, as every `branchbox` command was "
          "before, and `branchbox version` is the start of both binaries with no sandbox.",
          "",
          "What the branchbox sandbox does that the bwrap line does not: a cgroup namespace, "
          "seccomp, Landlock, rlimits, a generated /etc with host files bound read-only, masked "
          "and read-only /proc paths, a read-only /sys, and its own pid 1 (a separate static "
          "program without libc, exec'd so no page of the caller's memory survives). A cgroup "
          "of its own (v1: a directory in each of memory, pids, cpu, freezer, cpuacct, made, "
          "joined and removed) only when a limit asks for one: the `+ memory/pids/cpu limits` "
          "row. bwrap here runs as root, so it makes no user namespace either."]

    # Breakdown
    labels = [l for l, _ in variants]

    def offsets(label):
        res = {}
        for s in STAGES:
            vals = [(d[s] - d["t0"]) / 1e6 for d in st[label] if d.get(s) and d.get("t0")]
            if vals:
                res[s] = vals
        return res
    offs = {l: offsets(l) for l in labels}
    order = sorted(offs[labels[0]], key=lambda s: statistics.median(offs[labels[0]][s]))
    order += [s for l in labels for s in sorted(offs[l], key=lambda s: statistics.median(offs[l][s]))
              if s not in order]
    L += ["", f"Where the time goes: {STAGE_RUNS} runs of each, alternating, from a "
          "`-Dbench_stages=true` build (CLOCK_MONOTONIC at each stage; the child writes into a "
          "shared page). Each cell: when that stage was done, in ms since the harness started "
          "the process, median (min-max); parent (P) and sandbox child (C) run in parallel, so "
          "the order of the rows is the median order of the first column." +
          (" \"before\" is a `-Dbench_stages=true` build of the code before this work (commit "
           f"{os.environ.get('BEFORE_COMMIT', 'd4cf805 with only the timestamps added')}), run "
           "in the same loop." if before else ""),
          "",
          "| stage | " + " | ".join(labels) + " |",
          "|---|" + "---:|" * len(labels)]
    for s in order:
        cells = [benchlib.spread(offs[l][s]) if s in offs[l] else "-" for l in labels]
        L.append(f"| {s}: {STAGE_TEXT[s]} | " + " | ".join(cells) + " |")

    # In-process spawn
    pw = statistics.median(sp["posix_spawn"][0])
    L += ["", "The daemon's own spawn path (`sandbox_spawn()` + `sandbox_wait()` in one "
          "long-running process that has its libraries loaded, as the daemon does for every "
          f"environment process), {SPAWN_ROUNDS} rounds, order rotated, next to posix_spawn + "
          "waitpid of the same /bin/true from the same process "
          "(`build-bench-stages/src/sandbox/sandbox-spawn-bench`). \"own netns\": joins an "
          "existing network namespace and makes a named cgroup below a parent, as an "
          "environment's processes do; \"fresh netns\": a new one per spawn, as the CLI.", "",
          "| path | wall ms, median (min-max) | vs posix_spawn | CPU ms, median (min-max) |",
          "|---|---:|---:|---:|"]
    for name, label in (("sandbox_spawn_netns", "sandbox_spawn, own netns (environments)"),
                        ("sandbox_spawn", "sandbox_spawn, fresh netns"),
                        ("posix_spawn", "posix_spawn /bin/true")):
        w, c = sp[name]
        L.append(f"| {label} | {benchlib.spread(w)} | {statistics.median(w) / pw:.2f}x | "
                 f"{benchlib.spread(c)} |")
    runs = sp_stages.get("sandbox_spawn_netns", [])
    if runs:
        L += ["", "Where the in-process spawn's time goes (own netns; ms since sandbox_spawn() "
              "was called, median (min-max)):", "", "| stage | ms |", "|---|---:|"]
        offs = {s: [(d[s] - d["main"]) / 1e6 for d in runs if d.get(s) and d.get("main")]
                for s in STAGES if s != "main"}
        for s in sorted((s for s in offs if offs[s]), key=lambda s: statistics.median(offs[s])):
            L.append(f"| {s}: {STAGE_TEXT[s]} | {benchlib.spread(offs[s])} |")

    ratio = statistics.median(times["branchbox sandbox run"]) / bw
    paired = statistics.median(r["branchbox sandbox run"][0] / r["bwrap"][0] for r in per_round)
    old = statistics.median(times["branchbox-cli sandbox run"]) / bw
    # Met only when both the ratio of the medians and the median of the per-round ratios are.
    worst = max(ratio, paired)
    verdict = lambda r: "meets" if r <= TARGET else "MISSES"
    L += ["", f"**`branchbox sandbox run` {ratio:.2f}x bwrap (medians), {paired:.2f}x (median of "
          f"the per-round ratios): {verdict(worst)} the {TARGET}x target** (met only when both "
          f"are); CPU {statistics.median(cpu['branchbox sandbox run']) / bw_cpu:.2f}x. Started "
          f"from the full CLI binary: {old:.2f}x."]
    hist = (f"- {when}, commit {commit}, {ROUNDS} rounds: `branchbox sandbox run` "
            f"{statistics.median(times['branchbox sandbox run']):.2f} ms, bwrap {bw:.2f} ms: "
            f"**{ratio:.2f}x**, per-round {paired:.2f}x ({verdict(worst)} {TARGET}x), CPU "
            f"{statistics.median(cpu['branchbox sandbox run']) / bw_cpu:.2f}x; from the full "
            f"CLI binary {old:.2f}x; in-process spawn "
            f"{statistics.median(sp['sandbox_spawn_netns'][0]):.2f} ms vs posix_spawn "
            f"{pw:.2f} ms; load {load0}/{load1}")
    benchlib.write_section("sandbox", L, hist, SEED)
    log(hist[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
