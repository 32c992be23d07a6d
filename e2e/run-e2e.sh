#!/usr/bin/env bash
# The end-to-end tests (run inside e2e/run-with-sandbox.sh): every test binary but the operator's,
# two tests at a time, then the operator's alone. Both parts run even if the first fails; the
# exit code is non-zero if either failed.
#
# usage: e2e/run-e2e.sh CARGO
set -uo pipefail
cargo=${1:-cargo}
# The runner starts the project's binaries (driver Jobs, operator pods) from target/debug.
"$cargo" build -q -p rehearsal-runner -p rehearsal-driver -p rehearsal-operator || exit 1
# An operator left installed (say by `make demo` on a sandbox that stays up) would reconcile the
# Simulations of the tests that run drivers by hand, and would run an older binary.
kubectl delete deployment rehearsal-operator -n rehearsal-system --ignore-not-found --wait=true >/dev/null 2>&1 || true
rc=0
"$cargo" test -p rehearsal-e2e --no-fail-fast -- --test-threads=2 --skip operator_end_to_end || rc=$?
"$cargo" test -p rehearsal-e2e --test operator -- --nocapture || rc=$?
exit "$rc"
