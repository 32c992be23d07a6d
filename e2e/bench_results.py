#!/usr/bin/env python3
"""Benchmark results as data: the bench scripts record each figure here as they compute it.

Each part of `make bench` writes one file, bench-results/<name>.json (the directory is
$REHEARSAL_BENCH_RESULTS when set), which `rehearsal-driver bench compare OLD.json NEW.json`
reads. The format, schema "rehearsal.bench/v1":

    {
      "schema": "rehearsal.bench/v1",
      "name": "replay",                          # the part: webhook, replay, scenario, operator, ...
      "commit": "f520aa1...-dirty",              # git HEAD, "-dirty" when the tree had changes
      "started": "2026-12-02T03:47:07Z",         # when the part started (RFC 3339, UTC)
      "machine": {"cores": 2, "memory_bytes": 8336166912, "kernel": "6.1.0-18-amd64",
                  "cpu_model": "AMD EPYC 7B13"},
      "settings": {"concurrency": "128"},        # the knobs the part ran with (strings)
      "figures": {
        "configmaps.speed1.lateness_p99_ms": {
          "value": 1.234, "unit": "ms",
          "better": "lower",                     # lower | higher | none (context, e.g. a count)
          "goal": {"op": "<", "value": 10},      # optional; op is <, <=, > or >=
          "note": "..."                          # optional
        }
      }
    }

Figure ids are stable dotted names (lowercase letters, digits, '_' and '-' between the dots); a
parameter that changes what a figure means is part of its id (speed1, rate1000), so figures
measured differently are never compared with each other.

`begin(name)` starts the part's file afresh (machine, commit and start filled once, here);
`record(...)` merges one figure into it, under a lock and by an atomic rename, so a file is
always whole. A `record` without a `begin` starts the file itself. From bash:

    python3 e2e/bench_results.py begin NAME [KEY=VALUE ...]
    python3 e2e/bench_results.py record NAME FIGURE VALUE UNIT BETTER [--goal '<10'] [--note TEXT]
"""

import argparse
import contextlib
import datetime
import fcntl
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile

SCHEMA = "rehearsal.bench/v1"
BETTER = ("lower", "higher", "none")
GOAL_OPS = ("<", "<=", ">", ">=")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_FIGURE = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def results_dir():
    """Where the files go: $REHEARSAL_BENCH_RESULTS, else <repo>/bench-results."""
    return os.environ.get("REHEARSAL_BENCH_RESULTS") or os.path.join(_REPO, "bench-results")


def path_of(name):
    """The file of part `name`."""
    if not _NAME.match(name):
        raise ValueError(f"bench results name {name!r}: lowercase letters, digits, '_' and '-'")
    return os.path.join(results_dir(), f"{name}.json")


def commit():
    """git HEAD of the repository, with "-dirty" when anything (untracked files too) differs."""
    def git(*args):
        return subprocess.run(["git", "-C", _REPO, *args], capture_output=True, text=True, check=True).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        # Untracked files count: a new source file changes what is built.
        dirty = git("status", "--porcelain") != ""
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def machine():
    """Cores, memory, kernel and CPU model of this machine."""
    memory = None
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
                    break
    cpu_model = None
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    return {
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "kernel": platform.release(),
        "cpu_model": cpu_model or platform.processor() or platform.machine(),
    }


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _header(name, settings):
    return {
        "schema": SCHEMA,
        "name": name,
        "commit": commit(),
        "started": _now(),
        "machine": machine(),
        "settings": {str(k): str(v) for k, v in (settings or {}).items()},
        "figures": {},
    }


@contextlib.contextmanager
def _locked():
    """The results directory, locked against other writers (flock on the directory itself, so
    no lock file is left behind)."""
    d = results_dir()
    os.makedirs(d, exist_ok=True)
    fd = os.open(d, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield d
    finally:
        os.close(fd)


def _write(path, doc):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".json")
    try:
        # mkstemp makes the file private; results are meant to be read like any other file.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read(path):
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("figures"), dict):
        raise ValueError(f"{path}: not a {SCHEMA} results file; delete it or call begin() first")
    return doc


def begin(name, settings=None):
    """Starts part `name`'s file afresh: no figures yet; machine, commit and start filled now.
    Returns its path."""
    path = path_of(name)
    with _locked():
        _write(path, _header(name, settings))
    return path


def parse_goal(goal):
    """A goal as (op, value), {"op", "value"} or text like "<10", as stored: {"op", "value"}."""
    if goal is None:
        return None
    if isinstance(goal, str):
        m = re.match(r"^\s*(<=|>=|<|>)\s*(\S+)\s*$", goal)
        if not m:
            raise ValueError(f"goal {goal!r}: expected an operator ({', '.join(GOAL_OPS)}) and a number, e.g. '<10'")
        op, value = m.group(1), float(m.group(2))
    elif isinstance(goal, dict):
        op, value = goal.get("op"), goal.get("value")
    else:
        op, value = goal
    if op not in GOAL_OPS:
        raise ValueError(f"goal operator {op!r}: expected one of {', '.join(GOAL_OPS)}")
    return {"op": op, "value": _number(value, "goal value")}


def _number(value, what):
    # bool is an int in Python; True is not a figure.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} {value!r}: not a number")
    if not math.isfinite(value):
        raise ValueError(f"{what} {value!r}: not a finite number")
    # 3 rather than 3.0 for whole numbers read from text (the command line, goals).
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def record(name, figure_id, value, unit, better, goal=None, note=None):
    """Merges one figure into part `name`'s file (started with its header when missing)."""
    if not _FIGURE.match(figure_id):
        raise ValueError(f"figure id {figure_id!r}: dotted lowercase names, e.g. configmaps.speed1.lateness_p99_ms")
    figure = {"value": _number(value, f"figure {figure_id}: value"), "unit": unit, "better": better}
    if not isinstance(unit, str) or not unit:
        raise ValueError(f"figure {figure_id}: unit {unit!r}: expected a name such as ms, s, MB, ratio, %")
    if better not in BETTER:
        raise ValueError(f"figure {figure_id}: better {better!r}: expected one of {', '.join(BETTER)}")
    if goal is not None:
        figure["goal"] = parse_goal(goal)
    if note:
        figure["note"] = str(note)
    path = path_of(name)
    with _locked():
        doc = _read(path) if os.path.exists(path) else _header(name, None)
        doc["figures"][figure_id] = figure
        _write(path, doc)
    return path


def _main(argv):
    p = argparse.ArgumentParser(prog="bench_results.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("begin", help="start a part's results file afresh")
    b.add_argument("name")
    b.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    r = sub.add_parser("record", help="merge one figure into a part's results file")
    r.add_argument("name")
    r.add_argument("figure")
    r.add_argument("value", type=float)
    r.add_argument("unit")
    r.add_argument("better", choices=BETTER)
    r.add_argument("--goal", help="e.g. '<10'")
    r.add_argument("--note")
    args = p.parse_args(argv)
    try:
        if args.command == "begin":
            settings = {}
            for kv in args.settings:
                key, sep, value = kv.partition("=")
                if not sep or not key:
                    p.error(f"{kv!r}: expected KEY=VALUE")
                settings[key] = value
            begin(args.name, settings)
        else:
            record(args.name, args.figure, args.value, args.unit, args.better, args.goal, args.note)
    except (OSError, ValueError) as e:
        print(f"bench_results.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
