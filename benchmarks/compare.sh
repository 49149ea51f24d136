#!/usr/bin/env bash
# Every benchmark of the Performance table (docs/performance.md), for this checkout and for the
# previous implementation (the commit before the throughput work), in one run on one
# machine, then the profile of this checkout's training batch. Needs trained networks
# to evaluate (the Figure 3a sweep in trained_networks/RNN). Given a checkout of the
# paper's code release (panvaf/DisentangleRes) as the second argument or in RELEASE_DIR,
# it also times the release's own training loop in the same run (bench_release.py).
#
#     bash benchmarks/compare.sh [previous commit, default 9e20e74] [release checkout] > benchmarks/compare.txt
set -u
cd "$(dirname "$0")/.."
previous=${1:-9e20e74}
release=${2:-${RELEASE_DIR:-}}
old=$(mktemp -d)/previous
git worktree add -q --detach "$old" "$previous"
trap 'git worktree remove --force "$old"' EXIT
for repo in "$old" .; do
  echo "=== $( [ "$repo" = . ] && echo 'this checkout' || echo "previous ($previous)" )"
  python benchmarks/bench_train.py --repo="$repo" --n_batch=300 | grep -E 'RESULT|checkout'
  python benchmarks/bench_train.py --repo="$repo" --n_batch=300 --n_threads=2 --networks="['RNN']" --sizes=[25] | grep RESULT | sed 's/^/2 threads: /'
  python benchmarks/bench_shared.py --repo="$repo"
  python benchmarks/bench_generalize.py --repo="$repo" --runs_dir=trained_networks/RNN | grep -E 'RESULT'
done
if [ -n "$release" ]; then
  echo "=== the release's loop ($release)"
  # the release's own prints (loss, accuracy) go to stderr; keep the results and any error
  python benchmarks/bench_release.py --release_dir="$release" --n_batch=300 2>&1 | grep -E 'RESULT|^release |^error|Error'
fi
echo "=== Figure 3a evaluation (this checkout): 25 networks (n_task 2-24 x runs 0-4), both OOD protocols in one pass, 1 thread"
start=$(date +%s)
python generalize.py --runs_dir=trained_networks/RNN --n_runs=5 --protocol=both --label=bench --results_dir="$(mktemp -d)" > /dev/null
echo "$(( $(date +%s) - start )) s"
python benchmarks/bench_startup.py
echo "=== where the time goes (this checkout, 25 members, 1 thread)"
for network in RNN LSTM gpt-2; do
  python benchmarks/profile_train.py --network=$network 2>/dev/null | grep -v -E '^trained|it/s|USDT'
done
