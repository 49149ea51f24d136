#!/usr/bin/env bash
# The exact commands that made every result file and figure of docs/results.md
# (2 CPU cores, one thread per process, two processes at a time: about 5 hours).
# Rerunning is safe: finished networks and existing result files are skipped.
set -u
cd "$(dirname "$0")/.."

# 1. The paper's budget (1e5 batches; GPT-2 2e4): Figures 3a, 3b, 3c, 4, S1, fixed points, loss
python sweep.py fig3a fig3b fig3c fig4 fixed_points S1 loss --notebooks=False --n_threads=1 &

# 2. A reduced budget (2e4 batches, its own folder): Figures 5a, 5b/S12, 5c, S3b (and S5c's
#    free-RT networks, trained for 5a). S5c is not asked of this sweep: it reads results/RNN.npz,
#    which sweep 1 writes from the 1e5 networks; the 2e4 RNNs get their own label, RNN_2e4 (step 4).
python sweep.py fig5a fig5b_S12 fig5c S3b --n_batch=20000 --runs_dir=trained_networks_2e4 \
    --notebooks=False --n_threads=1
wait
python generalize.py --runs_dir=trained_networks_2e4/FreeRT --label=FreeRT --protocol=both

# 3. Sparsity (S6a at the paper's budget, S6b at 2e4)
for label in RNN RNN_NoLeak LSTM; do
  runs=$([ "$label" = RNN ] && echo 10 || echo 5)
  select=$([ "$label" = LSTM ] && echo "{'network': 'LSTM'}" || echo "{'network': 'RNN'}")
  python sparsity.py --runs_dir=trained_networks/$label --n_runs=$runs --select="$select" --label=$label
done
for D in 2 4 6 8 10; do
  python sparsity.py --runs_dir=trained_networks_2e4/HighDim_D$D --label=HighDim_D$D
done

# 4. The reduced budget against the full one: the same 50 RNN seeds at 2e4 batches
python generalize.py --runs_dir=trained_networks_2e4/RNN --n_runs=10 --label=RNN_2e4 --protocol=both
python sparsity.py --runs_dir=trained_networks_2e4/RNN --n_runs=10 --label=RNN_2e4

# 5. Every figure from the result files (Figures/out/), and the copies the README and docs/ show (docs/figures/)
python Figures/run_notebooks.py
python Figures/run_notebooks.py fig3b fig3c fig5a fig5b_S12 fig5c S1 S3b S5c --protocol=paper --out_dir=Figures/out/paper
python Figures/run_notebooks.py S5c --labels="{'RNN_2e4': 'fixed RT', 'FreeRT': 'free RT'}" --out_dir=Figures/out/2e4
python Figures/run_notebooks.py fig3b --labels="{'RNN': 'RNN', 'RNN_2e4': 'RNN'}" --out_dir=Figures/out/2e4
python Figures/run_notebooks.py S6 --labels="{'RNN': 'RNN', 'RNN_2e4': 'RNN'}" --out_dir=Figures/out/2e4
cp Figures/out/*.png docs/figures/
for f in S5c fig3b S6a; do cp Figures/out/2e4/$f.png docs/figures/${f}_2e4.png; done
for f in Figures/out/paper/*.png; do cp "$f" "docs/figures/$(basename "$f" .png)_paper.png"; done
