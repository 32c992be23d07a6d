#!/usr/bin/env python3
"""Replay lateness as the API server saw it (issue 11, point 6).

The driver counts a request late from its deadline to the moment it starts the request; what a
rehearsal is about is when the API server received it. The sandbox's API server writes an audit
log (JSON lines, e2e/cluster/audit-policy.yaml) whose events carry `requestReceivedTimestamp`.
This module sets each write of the replay against its deadline:

    deadline = started_unix_seconds + (event ts - first_ts) / speed

(the `clock` block of the driver's --stats-file), matching the trace's operations to audit events
by virtual namespace, name, resource and verb (apply: patch or create; delete: delete), in order,
within the replay's own time window (so the cleanup's deletions are not counted).

The API server rotates its log (every 100 MB by default, into audit-<time>.log beside it), so
every file of that folder written since the replay started is read; the time window keeps
earlier runs out.

From bash:  python3 e2e/audit_lateness.py AUDIT_LOG TRACE.json STATS.json PREFIX
prints a JSON object: {"count", "unmatched", "p50", "p99", "max"} in ms.
"""

import datetime
import glob
import json
import math
import os
import sys
from collections import defaultdict


def _ts(text):
    """RFC 3339 with microseconds (audit events) to unix seconds."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _quantile(sorted_values, q):
    """Nearest rank, as the driver computes its own lateness."""
    if not sorted_values:
        return 0.0
    rank = min(max(math.ceil(q * len(sorted_values)), 1), len(sorted_values))
    return sorted_values[rank - 1]


def _resource(kind):
    """The plural the API server logs for the kinds the bench traces hold."""
    lower = kind.lower()
    return lower + "es" if lower.endswith("s") else lower + "s"


def deadlines(trace, clock, prefix):
    """{(namespace, resource, name, verb class): [deadline, ...]} of every operation in the trace."""
    started, first, speed = clock["started_unix_seconds"], clock["first_ts"], clock["speed"]
    out = defaultdict(list)
    for event in trace["events"]:
        due = started + (event["ts"] - first) / speed
        for verb, objs in (("apply", event.get("applied_objs", [])), ("delete", event.get("deleted_objs", []))):
            for obj in objs:
                meta = obj.get("metadata", {})
                ns = f"{prefix}-{meta.get('namespace') or 'default'}"
                out[(ns, _resource(obj["kind"]), meta["name"], verb)].append(due)
    return out


def _files(audit_path, since):
    """The audit log and its rotated backups last written at or after `since` (unix seconds)."""
    stem, ext = os.path.splitext(audit_path)
    files = glob.glob(f"{glob.escape(stem)}-*{ext}") + [audit_path]
    return sorted(f for f in files if os.path.exists(f) and os.path.getmtime(f) >= since)


def events(audit_path, marker, window):
    """(event, requestReceivedTimestamp) of every audit event received in `window` whose line holds
    `marker` (bytes): a cheap test first, as a 10,000-pod run writes hundreds of MB of events."""
    start, end = window
    for path in _files(audit_path, start):
        with open(path, "rb") as f:
            for line in f:
                if marker not in line:
                    continue
                try:
                    e = json.loads(line)
                except ValueError:
                    continue  # a line being written as we read
                at = _ts(e["requestReceivedTimestamp"])
                if start <= at <= end:
                    yield e, at


def received(audit_path, prefix, window):
    """{key: [requestReceivedTimestamp, ...]} of the writes in the run's namespaces in `window`."""
    verbs = {"patch": "apply", "create": "apply", "delete": "delete"}
    out = defaultdict(list)
    for e, at in events(audit_path, f'"namespace":"{prefix}-'.encode(), window):
        ref = e.get("objectRef") or {}
        verb = verbs.get(e.get("verb"))
        ns = ref.get("namespace", "")
        if not verb or ref.get("subresource") or not ns.startswith(prefix + "-") or "name" not in ref:
            continue
        out[(ns, ref.get("resource", ""), ref["name"], verb)].append(at)
    return out


def lateness(audit_path, trace_path, stats_path, prefix):
    """Lateness in ms of every write of the replay as the API server received it."""
    stats = json.load(open(stats_path))
    clock = stats["clock"]
    due = deadlines(json.load(open(trace_path)), clock, prefix)
    # From a little before the first deadline (early requests count as 0 ms late) to the replay's
    # end plus a margin for the last requests in flight.
    window = (clock["started_unix_seconds"] - 1, clock["started_unix_seconds"] + stats["elapsed_seconds"] + 5)
    got = received(audit_path, prefix, window)
    late, unmatched = [], 0
    for key, times in due.items():
        arrivals = sorted(got.get(key, []))
        unmatched += max(len(times) - len(arrivals), 0)
        late.extend(max(a - d, 0.0) * 1000 for d, a in zip(sorted(times), arrivals))
    late.sort()
    return {"count": len(late), "unmatched": unmatched, "p50": _quantile(late, 0.5), "p99": _quantile(late, 0.99),
            "max": late[-1] if late else 0.0}


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: audit_lateness.py AUDIT_LOG TRACE.json STATS.json PREFIX")
    audit_log, trace_path, stats_path, prefix = sys.argv[1:]
    print(json.dumps(lateness(audit_log, trace_path, stats_path, prefix)))
