#!/usr/bin/env bash
# The GPU measurements of docs/performance.md, on one GPU: training throughput (bench_train.py)
# and the whole Figure 3a pipeline (25 networks at the paper's budget, trained and
# evaluated under both OOD protocols and in distribution), timed.
#
#     OUT=gpu_out bash benchmarks/gpu.sh
#
# Writes $OUT/gpu_log.txt and the result files under $OUT/results/.
set -u
export PYTHONUNBUFFERED=1
out=${OUT:-gpu_out}
mkdir -p "$out/results"
nets=${NETS:-gpu_nets}
{
  nvidia-smi -L
  python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  nproc
  echo "== training throughput (network-batches/s), CUDA graph, 8 data threads"
  timeout 150 python benchmarks/bench_train.py --device=cuda --n_batch=1000 --sizes=[1,25,100] \
    --extra="{'data_threads': 8}"
  echo "== Figure 3a pipeline: 25 networks, 1e5 batches each, then 3 evaluations in parallel"
  start=$(date +%s.%N)
  timeout 240 python train.py --n_task=[2,3,6,12,24] --runs=5 --device=cuda --data_threads=12 \
    --out_dir="$nets/RNN"
  trained=$(date +%s.%N)
  for args in "" "--protocol=paper" "--out_of_distribution=False"; do
    timeout 200 python generalize.py --runs_dir="$nets/RNN" --device=cuda --results_dir="$out/results" $args &
  done
  wait
  done_=$(date +%s.%N)
  python -c "print(f'fig3a pipeline: training {$trained - $start:.0f} s, evaluation {$done_ - $trained:.0f} s, total {$done_ - $start:.0f} s')"
} 2>&1 | tee "$out/gpu_log.txt"
