#!/bin/bash
# SPDX-License-Identifier: MIT
# Authorized + audited API reads per second and p99, side by side with the same route in a
# build where authentication, authorization and audit are compiled out (-Dbench_noauth=true).
# Usage: bench/auth.sh [BUILD_DIR]   (env: RUNS=5 DURATION=5s CONNECTIONS=32 THREADS=2)
# Writes its section of bench/RESULTS.md between <!-- bench:auth --> and <!-- /bench:auth -->.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
NOAUTH=$ROOT/build-bench-noauth
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUTE="/v1/environments/pr-1/audit?limit=1"

command -v wrk >/dev/null || { echo "bench/auth.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "bench/auth.sh: sqlite3 is missing (apt-get install sqlite3)" >&2; exit 1; }

opt() { meson introspect --buildoptions "$1" | /usr/bin/python3 -c \
	"import json,sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name']=='$2'))"; }
BUILDTYPE=$(opt "$BUILD" buildtype)
SANITIZE=$(opt "$BUILD" b_sanitize)
[ "$(opt "$BUILD" bench_noauth)" = "False" ] || { echo "bench/auth.sh: $BUILD is a bench_noauth build" >&2; exit 1; }
if [ ! -d "$NOAUTH" ]; then
	meson setup "$NOAUTH" -Dbench_noauth=true -Dtests=false -Dbuildtype="$BUILDTYPE" \
		-Db_sanitize="$SANITIZE" -Db_lundef=false >/dev/null
fi
ninja -C "$BUILD" src/cli/branchbox >/dev/null
ninja -C "$NOAUTH" src/cli/branchbox >/dev/null

TMP=$(mktemp -d /tmp/bbx-bench-auth.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
git init -q "$TMP/repo"

start() { # name binary [serve options...] -> sets PORT
	local name=$1 bin=$2
	shift 2
	"$bin" serve --repo "$TMP/repo" --state "$TMP/$name" --listen 127.0.0.1:0 "$@" >"$TMP/$name.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		PORT=$(sed -n 's/.*http port \([0-9]*\).*/\1/p' "$TMP/$name.log")
		[ -n "$PORT" ] && [ -S "$TMP/$name/branchbox.sock" ] && break
		sleep 0.1
	done
	[ -n "$PORT" ] || { cat "$TMP/$name.log" >&2; exit 1; }
	sqlite3 "$TMP/$name/state.db" "INSERT INTO environments (name, kind, branch, state, created_at, updated_at) \
		VALUES ('pr-1', 'preview', 'pr-1', 'ready', 1, 1)"
}
# The no-auth build refuses to start unless told so in as many words.
rc=0
timeout 20 "$NOAUTH/src/cli/branchbox" serve --repo "$TMP/repo" --state "$TMP/refused" \
	--listen 127.0.0.1:0 >"$TMP/refused.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q -- "--insecure-no-auth" "$TMP/refused.log" ||
	{ echo "bench/auth.sh: the noauth build started without --insecure-no-auth" >&2; exit 1; }
# Two daemons at once: each its own uid range (a running daemon's range is refused to another).
start auth "$BUILD/src/cli/branchbox" --uid-range 1996488704-1996492799; AUTH_PORT=$PORT
start noauth "$NOAUTH/src/cli/branchbox" --insecure-no-auth --uid-range 1996492800-1996496895; NOAUTH_PORT=$PORT
grep -q "bench_noauth" "$TMP/noauth.log" || { echo "bench/auth.sh: the noauth daemon did not warn" >&2; exit 1; }
/usr/bin/python3 - "$NOAUTH_PORT" "$ROUTE" <<'PY' || { echo "bench/auth.sh: the noauth daemon's answers are not marked insecure" >&2; exit 1; }
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", sys.argv[2])
r = c.getresponse()
sys.exit(0 if r.status == 200 and r.getheader("X-Branchbox-Insecure") == "no-auth" else 1)
PY
TOKEN=$("$BUILD/src/cli/branchbox" token --state "$TMP/auth" create --agent bench --env 'pr-*' \
	--verbs env:read --ttl 1h 2>/dev/null)

bench() { # port [token] -> one wrk output file
	local hdr=()
	[ -n "${2:-}" ] && hdr=(-H "Authorization: Bearer $2")
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$3" --latency "${hdr[@]}" "http://127.0.0.1:$1$ROUTE"
}
# Warm-up, then alternate so both sides see the same machine noise.
bench "$AUTH_PORT" "$TOKEN" 2s >/dev/null
bench "$NOAUTH_PORT" "" 2s >/dev/null
for i in $(seq "$RUNS"); do
	bench "$AUTH_PORT" "$TOKEN" "$DURATION" >"$TMP/wrk-auth-$i.txt"
	bench "$NOAUTH_PORT" "" "$DURATION" >"$TMP/wrk-noauth-$i.txt"
done

# Every authorized request left a record and the chain is intact.
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
VERIFY=$("$BUILD/src/cli/branchbox" audit verify --db "$TMP/auth/state.db")

export TMP RUNS DURATION CONNECTIONS THREADS ROUTE BUILD NOAUTH VERIFY BUILDTYPE SANITIZE
/usr/bin/python3 - "$ROOT/bench/RESULTS.md" <<'PY'
import os, re, statistics, subprocess, sys

tmp, runs = os.environ["TMP"], int(os.environ["RUNS"])

def parse(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    errs = re.search(r"Socket errors: (.*)", t)
    return rps, p99, int(bad.group(1)) if bad else 0, errs.group(1) if errs else ""

a = [parse(f"{tmp}/wrk-auth-{i}.txt") for i in range(1, runs + 1)]
n = [parse(f"{tmp}/wrk-noauth-{i}.txt") for i in range(1, runs + 1)]
ratios = [y[0] / x[0] for x, y in zip(a, n)]

def s(v, fmt="{:.0f}"):
    return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))} - {fmt.format(max(v))})"

def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

rps_a = statistics.median(x[0] for x in a)
ratio = statistics.median(ratios)
verdict = []
verdict.append(f"audited reads/s: {rps_a:.0f} -> {'meets' if rps_a >= 5000 else 'MISSES'} the 5,000/s target")
verdict.append(f"overhead {ratio:.2f}x -> {'meets' if ratio < 2 else 'MISSES'} the under-2x target")
section = f"""<!-- bench:auth -->
## Authorized + audited API reads (bench/auth.sh)

What: `GET {os.environ['ROUTE']}` over loopback HTTP with a valid agent token (authenticated,
authorized against its scope, and one audit record fsynced per request through group commit
before the answer), next to the same route in a `-Dbench_noauth=true` build (no authentication,
authorization or audit). Same machine, same run, alternating, after a 2 s warm-up.

Command: `wrk -t{os.environ['THREADS']} -c{os.environ['CONNECTIONS']} -d{os.environ['DURATION']} --latency URL`, {runs} runs each; median (min - max).
Builds: `{os.path.basename(os.environ['BUILD'])}` and `{os.path.basename(os.environ['NOAUTH'])}`, buildtype {os.environ['BUILDTYPE']}, sanitizers {os.environ['SANITIZE']}.
Machine: {sh('nproc')} cores, {sh("free -g | awk '/Mem:/{print $2}'")} GiB, kernel {sh('uname -r')}, state dir on {sh("df -T /tmp | awk 'NR==2{print $2}'")}; wrk runs on the same 2 cores.

| | requests/s | p99 latency (ms) | non-2xx |
|---|---|---|---|
| authorized + audited | {s([x[0] for x in a])} | {s([x[1] for x in a], '{:.1f}')} | {sum(x[2] for x in a)} |
| bench_noauth | {s([x[0] for x in n])} | {s([x[1] for x in n], '{:.1f}')} | {sum(x[2] for x in n)} |
| overhead (noauth/auth requests/s) | {s(ratios, '{:.2f}')}x | | |

Result: {'; '.join(verdict)}.
Chain after the run: `{os.environ['VERIFY'].splitlines()[0]}`.
<!-- /bench:auth -->"""

path = sys.argv[1]
old = open(path).read() if os.path.exists(path) else "# branchbox benchmark results\n\nWritten by `make bench` / `bench/run`; see BENCHMARKS.md for the method.\n"
if "<!-- bench:auth -->" in old:
    new = re.sub(r"<!-- bench:auth -->.*?<!-- /bench:auth -->", lambda m: section, old, flags=re.S)
else:
    new = old.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(new)
print(section)
PY
