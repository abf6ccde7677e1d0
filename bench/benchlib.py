# SPDX-License-Identifier: MIT
"""Helpers shared by the bench/ scripts: the commit measured, the machine, and rewriting one
marked section of bench/RESULTS.md while keeping its run history (every run, newest first;
nothing is ever removed from it)."""
import os
import re
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
HISTORY = "Every run of this benchmark, newest first (none is ever removed):"


def commit():
    """Short hash of HEAD, marked when src/ or bench/ differ from it."""
    c = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "bench",
                            "meson.build", "meson_options.txt"],
                           capture_output=True, text=True).stdout.strip()
    dirty = [l for l in dirty.splitlines() if not l.endswith("bench/RESULTS.md")]
    return c + (" (modified)" if dirty else "")


def machine():
    mem = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) >> 10
    return f"{os.cpu_count()} CPUs, {mem} MiB RAM, kernel {os.uname().release}"


def load():
    return open("/proc/loadavg").read().split()[0]


def spread(values, fmt="{:.2f}"):
    """'median (min-max)'."""
    v = sorted(values)
    return f"{fmt.format(statistics.median(v))} ({fmt.format(v[0])}-{fmt.format(v[-1])})"


def write_section(tag, lines, hist_line, seed_history=()):
    """Replace <!-- bench:TAG --> ... <!-- /bench:TAG --> with lines, followed by the history
    (hist_line first, then every line recorded before, then seed_history lines not in it)."""
    begin, end = f"<!-- bench:{tag} -->", f"<!-- /bench:{tag} -->"
    old = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    history = []
    if begin in old and end in old:
        sec = old.split(begin, 1)[1].split(end, 1)[0]
        if HISTORY in sec:
            history = [l for l in sec.split(HISTORY, 1)[1].splitlines() if l.startswith("- ")]
    history += [l for l in seed_history if l not in history]
    section = "\n".join([begin, *lines, "", HISTORY, "", hist_line, *history, end]) + "\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        text = head + section.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = old.rstrip("\n") + "\n\n" + section
    with open(RESULTS + ".tmp", "w") as f:
        f.write(text.rstrip("\n") + "\n")
    os.replace(RESULTS + ".tmp", RESULTS)
