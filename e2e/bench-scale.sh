#!/usr/bin/env bash
# make bench-scale: a placeholder until the scale benchmark is written (issue 11); make bench runs
# it with the other parts. The real script records its figures with e2e/bench_results.py into
# bench-results/scale.json, like the others.
echo "bench-scale: not written yet"
exit 0
