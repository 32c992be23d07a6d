#!/usr/bin/env bash
# Runs a command against the local control plane (e2e/cluster/sandbox.sh).
#
# If the sandbox is not up, builds the runner, driver and operator, brings it up, and
# stops it again when the command ends, fails or is interrupted. If it was already up, it is
# used as it is and left running. The command sees the sandbox's environment (KUBECONFIG,
# AWS_ENDPOINT_URL, REHEARSAL_AUDIT_LOG, ...). Exits with the command's exit code.
#
# usage: e2e/run-with-sandbox.sh CMD [ARGS...]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
sandbox=$here/cluster/sandbox.sh

if [ $# -eq 0 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

started=0
child=
# shellcheck disable=SC2329 # called by the EXIT trap
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if [ "$started" = 1 ]; then
    echo "run-with-sandbox: stopping the sandbox it started" >&2
    "$sandbox" down >&2 || true
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if "$sandbox" status >/dev/null 2>&1; then
  echo "run-with-sandbox: using the sandbox that is already up" >&2
else
  echo "run-with-sandbox: building rehearsal-runner, rehearsal-driver and rehearsal-operator" >&2
  (cd "$repo" && cargo build -q -p rehearsal-runner -p rehearsal-driver -p rehearsal-operator)
  started=1
  "$sandbox" up >&2
fi

eval "$("$sandbox" env)"

# In the background so that a TERM sent to this script is handled at once (bash defers traps
# while a foreground command runs); <&0 keeps the caller's stdin (the default would be /dev/null).
"$@" <&0 &
child=$!
rc=0
wait "$child" || rc=$?
child=
exit "$rc"
