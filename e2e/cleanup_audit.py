#!/usr/bin/env python3
"""Who deleted what during a run's cleanup, from the sandbox's audit log (issue 11, point 4).

A cleanup's time goes to the API server's writes; this module counts them from the audit log
(e2e/cluster/audit-policy.yaml records every write at Metadata): every delete and
deletecollection in the run's namespaces, and of the namespaces themselves, received from
`start` on, grouped by who sent it (the driver, the garbage collector, the namespace controller,
kwok) and what it deleted, with how many were refused (404: already gone; 409: precondition),
and when the first and the last were received, in seconds after `start`.

From bash:  python3 e2e/cleanup_audit.py AUDIT_LOG NAMESPACE_PREFIX START_UNIX_SECONDS
prints one line per (user, resource) and the moment the last namespace delete was answered.
"""

import sys
from collections import defaultdict

from audit_lateness import _ts, events

_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:"


def _who(event):
    """The sender, short: a kube-system service account by its name, anyone else as logged."""
    name = (event.get("user") or {}).get("username", "?")
    return name[len(_SERVICE_ACCOUNT):] if name.startswith(_SERVICE_ACCOUNT) else name


def deletes(audit_path, prefix, start, end=float("inf")):
    """{(user, resource, verb): {"count", "refused", "first_s", "last_s"}} of the deletes in the
    namespaces named `prefix`* received in [start, end], and "namespaces_gone_s": when the last
    delete of such a namespace was answered (None when none was seen)."""
    groups = defaultdict(lambda: {"count": 0, "refused": 0, "first_s": None, "last_s": None})
    namespaces_gone = None
    for e, at in events(audit_path, f'"{prefix}'.encode(), (start, end)):
        verb = e.get("verb")
        if verb not in ("delete", "deletecollection"):
            continue
        ref = e.get("objectRef") or {}
        resource = ref.get("resource", "")
        if resource == "namespaces":
            if not ref.get("name", "").startswith(prefix) or ref.get("subresource"):
                continue
        elif not ref.get("namespace", "").startswith(prefix):
            continue
        code = (e.get("responseStatus") or {}).get("code", 0)
        done = _ts(e.get("stageTimestamp", e["requestReceivedTimestamp"])) - start
        g = groups[(_who(e), resource, verb)]
        g["count"] += 1
        g["refused"] += 1 if code in (404, 409) else 0
        offset = at - start
        g["first_s"] = offset if g["first_s"] is None else min(g["first_s"], offset)
        g["last_s"] = done if g["last_s"] is None else max(g["last_s"], done)
        if resource == "namespaces" and code < 300:
            namespaces_gone = done if namespaces_gone is None else max(namespaces_gone, done)
    return dict(groups), namespaces_gone


def lines(groups):
    """One readable line per group, the busiest first."""
    out = []
    for (who, resource, verb), g in sorted(groups.items(), key=lambda kv: -kv[1]["count"]):
        out.append(f"{who:<32} {verb:<16} {resource:<12} {g['count']:>6} ({g['refused']:>5} refused) "
                   f"from {g['first_s']:6.1f} s to {g['last_s']:6.1f} s")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: cleanup_audit.py AUDIT_LOG NAMESPACE_PREFIX START_UNIX_SECONDS")
    found, gone = deletes(sys.argv[1], sys.argv[2], float(sys.argv[3]))
    print("\n".join(lines(found)))
    print("namespaces deleted at " + (f"{gone:.1f} s" if gone is not None else "(not seen)"))
