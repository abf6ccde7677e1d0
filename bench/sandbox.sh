#!/bin/sh
# Start-to-exit latency of /bin/true in the full sandbox, side by side with bubblewrap (closest
# flags), unshare(1) and a plain fork/exec, in the same run.
#
# Usage: bench/sandbox.sh BUILD_DIR   (root; prints a Markdown section on stdout)
#
# The machine is shared and noisy, so the commands are interleaved: ROUNDS hyperfine rounds,
# each running every command RUNS times after a warm-up, the order rotating between rounds.
# All runs of a command are pooled for the median, min and max.
set -eu

BUILD=${1:?usage: bench/sandbox.sh BUILD_DIR}
BIN=$(realpath "$BUILD/src/cli/branchbox")
ROUNDS=${ROUNDS:-10}
RUNS=${RUNS:-6}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ "$(id -u)" != 0 ]; then
	echo "bench/sandbox.sh: needs root" >&2
	exit 1
fi
for t in hyperfine bwrap unshare python3; do
	command -v "$t" >/dev/null || { echo "bench/sandbox.sh: $t missing (scripts/install-deps)" >&2; exit 1; }
done

SANDBOX="$BIN sandbox run -- /bin/true"
SANDBOX_LIMITS="$BIN sandbox run --memory 256M --pids 64 --cpu 1 -- /bin/true"
BWRAP="bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --proc /proc --dev /dev --tmpfs /tmp /bin/true"
UNSHARE="unshare -p -f -n -m -i -u --mount-proc /bin/true"
PLAIN="/bin/true"
STARTUP="$BIN version"

i=0
while [ "$i" -lt "$ROUNDS" ]; do
	case $((i % 5)) in
	0) set -- "$SANDBOX" "$SANDBOX_LIMITS" "$BWRAP" "$UNSHARE" "$PLAIN" "$STARTUP" ;;
	1) set -- "$BWRAP" "$UNSHARE" "$PLAIN" "$STARTUP" "$SANDBOX" "$SANDBOX_LIMITS" ;;
	2) set -- "$PLAIN" "$SANDBOX" "$STARTUP" "$BWRAP" "$SANDBOX_LIMITS" "$UNSHARE" ;;
	3) set -- "$UNSHARE" "$STARTUP" "$BWRAP" "$SANDBOX_LIMITS" "$PLAIN" "$SANDBOX" ;;
	4) set -- "$STARTUP" "$SANDBOX_LIMITS" "$PLAIN" "$UNSHARE" "$SANDBOX" "$BWRAP" ;;
	esac
	hyperfine -N --style none --warmup 2 --runs "$RUNS" --export-json "$TMP/round-$i.json" "$@" >/dev/null 2>&1
	# CPU time of the whole process tree (perf counts every descendant, reaped or not;
	# hyperfine's rusage misses children their parent never waited for).
	if command -v perf >/dev/null; then
		for c in "$@"; do
			# shellcheck disable=SC2086
			perf stat -x, -e task-clock -r "$RUNS" $c 2>&1 >/dev/null |
				awk -F, -v c="$c" '$3 == "task-clock" { print c "\t" $1 }' >>"$TMP/cpu.tsv"
		done
	fi
	i=$((i + 1))
done

# Where the time goes: one traced run (strace inflates every syscall, so only the shares count).
if command -v strace >/dev/null; then
	strace -f -w -c -o "$TMP/strace.txt" $SANDBOX >/dev/null 2>&1 || true
fi

FS=$(stat -f -c %T /)
export SANDBOX SANDBOX_LIMITS BWRAP UNSHARE PLAIN STARTUP FS ROUNDS RUNS
python3 - "$TMP" <<'PY'
import glob, json, os, statistics, subprocess, sys
pooled, cpu = {}, {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "round-*.json"))):
    for r in json.load(open(f))["results"]:
        pooled.setdefault(r["command"], []).extend(r["times"])
cpu_file = os.path.join(sys.argv[1], "cpu.tsv")
if os.path.exists(cpu_file):
    for line in open(cpu_file):
        cmd, ms = line.rstrip("\n").rsplit("\t", 1)
        cpu.setdefault(cmd, []).append(float(ms) / 1000)
E = os.environ
rows = [("branchbox sandbox (full)", E["SANDBOX"]),
        ("branchbox sandbox + memory/pids/cpu limits", E["SANDBOX_LIMITS"]),
        ("bwrap", E["BWRAP"]), ("unshare", E["UNSHARE"]), ("fork/exec", E["PLAIN"]),
        ("branchbox version (binary start only)", E["STARTUP"])]
bw = statistics.median(pooled[E["BWRAP"]])
mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
kernel = os.uname().release
nproc = os.cpu_count()
bwv = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
hfv = subprocess.run(["hyperfine", "--version"], capture_output=True, text=True).stdout.strip()
print("## Sandbox start-to-exit latency (/bin/true)\n")
print(f"Machine: {nproc} CPUs, {mem} MiB RAM, kernel {kernel}, root filesystem {E['FS']}; "
      f"cgroups as found on the machine; {bwv}; {hfv}.")
print(f"Method: `bench/sandbox.sh`, {E['ROUNDS']} interleaved hyperfine rounds "
      f"(`-N --warmup 2 --runs {E['RUNS']}`, command order rotated), all runs pooled "
      f"({len(pooled[E['PLAIN']])} per command). Ratio = median / bwrap median. CPU: "
      f"`perf stat -e task-clock -r {E['RUNS']}` per command and round (the whole process "
      f"tree), median of the round means.\n")
def cpu_median(cmd):
    return statistics.median(cpu[cmd]) if cpu.get(cmd) else float("nan")
bw_cpu = cpu_median(E["BWRAP"])
print("| Command | median ms | min ms | max ms | vs bwrap | CPU ms (perf task-clock) | CPU vs bwrap |")
print("|---|---:|---:|---:|---:|---:|---:|")
for label, cmd in rows:
    t = pooled[cmd]
    med = statistics.median(t)
    c = cpu_median(cmd)
    print(f"| {label} | {med*1000:.2f} | {min(t)*1000:.2f} | {max(t)*1000:.2f} | {med/bw:.2f}x "
          f"| {c*1000:.2f} | {c/bw_cpu:.2f}x |")
print("\nCommands:\n")
for label, cmd in rows:
    print(f"- {label}: `{cmd.replace(E['SANDBOX'].split()[0], 'branchbox')}`")
print()
print("The branchbox sandbox does strictly more than the bwrap line: cgroup (v1: memory, pids, "
      "cpu, freezer directories created, joined and removed), cgroup namespace, seccomp, "
      "Landlock, a generated /etc, masked /proc and read-only /proc paths, a read-only /sys, "
      "and its own pid 1.")
st = os.path.join(sys.argv[1], "strace.txt")
if os.path.exists(st):
    lines = [l for l in open(st).read().splitlines() if l.strip()]
    body = [l for l in lines[2:] if not l.startswith("---") and "total" not in l][:8]
    total = [l for l in lines if "total" in l]
    print("\nSyscall time of one traced full-sandbox run (`strace -f -w -c`, top 8 by wall "
          "time; `poll`/`read` are the CLI and init waiting for their children):\n")
    print("```")
    print("\n".join(lines[:2] + body + total))
    print("```")
PY
