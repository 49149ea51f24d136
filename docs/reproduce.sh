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

# 4b. Session 16: Figure 3a re-evaluated with Adam and least squares on the same trials (the
# disentanglement metrics come with it; the Adam files reproduce the committed ones bit for bit)
python generalize.py --runs_dir=trained_networks/RNN --n_tasks=[2,3,6,12,24] --n_runs=10 --label=RNN --protocol=both --decoder=both
python analyze.py --path=trained_networks/RNN/nTask24_run0            # + the steady-state units' metrics
# Figure 5a, one network set per T (the release's timing), the no-absorption control, the 1e5 check at T = 5
for T in 5 10 20 30 40; do
  tm="{'fixation':0,'stimulus':$((100*T)),'delay':0,'decision':0}"
  python train.py --task=LinearClassificationBound --CE_loss=False --timing="$tm" --n_task=24 --runs=5 --n_batch=20000 --out_dir=trained_networks/FreeRT5a_T$T
  python generalize.py --runs_dir=trained_networks/FreeRT5a_T$T --n_tasks=[24] --n_runs=5 --decoder=both --protocol=both --label=FreeRT5a_T$T
done
for T in 10 20 40; do
  tm="{'fixation':0,'stimulus':$((100*T)),'delay':0,'decision':0}"
  python train.py --task=LinearClassificationBound --CE_loss=False --bound=1000.0 --timing="$tm" --n_task=24 --runs=5 --n_batch=20000 --out_dir=trained_networks/FreeRT5a_nobound_T$T
  python generalize.py --runs_dir=trained_networks/FreeRT5a_nobound_T$T --n_tasks=[24] --n_runs=5 --decoder=both --protocol=both --label=FreeRT5a_nobound_T$T
  python train.py --task=LinearClassificationBound --CE_loss=False --timing="$tm" --n_task=24 --runs=5 --n_batch=0 --out_dir=trained_networks/FreeRT5a_T${T}_untrained
  python generalize.py --runs_dir=trained_networks/FreeRT5a_T${T}_untrained --n_tasks=[24] --n_runs=5 --decoder=both --protocol=both --label=FreeRT5a_T${T}_untrained
done
python train.py --task=LinearClassificationBound --CE_loss=False --timing="{'fixation':0,'stimulus':500,'delay':0,'decision':0}" --n_task=24 --runs=5 --out_dir=trained_networks/FreeRT5a_1e5_T5
python generalize.py --runs_dir=trained_networks/FreeRT5a_1e5_T5 --n_tasks=[24] --n_runs=5 --decoder=both --protocol=both --label=FreeRT5a_1e5_T5
# The untrained baselines (docs/baseline.md): 5 networks at N_task 2 and 24 (at 24 for the D and sigma sweeps)
base() { label=$1 nt=$2; shift 2; python train.py --n_batch=0 --n_task=$nt --runs=5 --out_dir=trained_networks/${label}_untrained "$@"; }
ev() { label=$1 nt=$2; shift 2; python generalize.py --runs_dir=trained_networks/${label}_untrained --n_tasks=$nt --n_runs=5 --decoder=both --protocol=both --label=${label}_untrained "$@"; }
base RNN [2,24]; ev RNN [2,24]
base LSTM [2,24] --network=LSTM; ev LSTM [2,24] --select="{'network': 'LSTM'}"
base RNN_NoLeak [2,24] --leaky=False; ev RNN_NoLeak [2,24] --select="{'leaky': False}"
base gpt-2 [2,24] --network=gpt-2; ev gpt-2 [2,24] --select="{'network': 'gpt-2'}"
base Quad [2,24] --activ_enc=Quad; ev Quad [2,24] --select="{'activ_enc': 'Quad'}"
for D in 2 4 6 8 10; do
  base HighDim_D$D [24] --task=LinearClassificationHighDim --n_dim=$D
  # split_var at D > 2 only: D = 2 held out each quadrant (split_var now holds out half-planes there)
  ev HighDim_D$D [24] --select="{'task': 'LinearClassificationHighDim'}" --split_var=$([ $D -gt 2 ] && echo True || echo False) --save_decoders=False
done
for n in 1 3 4 6; do base Noise_$n [24] --n_sd_in=$n; ev Noise_$n [24] --select="{'n_sd_in': $n}"; done
python -c "import results; print('\n'.join(results.baseline_report()))"   # the table of docs/baseline.md
python -c "import train, linearity; c = train.defaults(); linearity.main(c, [train.member_seeds(c['seed'], 24, r)[0] for r in range(3)])"
# Figure 4 quantified: a GPT-2 network with Figure 4's seed, trained alone (not bit-identical to the sweep's)
python train.py --network=gpt-2 --n_task=24 --run=0 --runs=1 --out_dir=trained_networks/gpt-2_alone
python analyze_transformer.py --runs_dir=trained_networks/gpt-2_alone --out_dir=analysis_alone

# Session 17: the free-RT baselines (S5c, and 5a's set trained at T = 20 evaluated at each T;
# the sweep's own commands), 5a's matched-design baselines at T = 5 and 30, and D = 2 with
# half-planes held out (docs/deviations.md, held-out sets)
python train.py --task=LinearClassificationBound --CE_loss=False --n_batch=0 --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/FreeRT_untrained
python generalize.py --runs_dir=trained_networks/FreeRT_untrained --n_runs=5 --decoder=both --protocol=both --label=FreeRT_untrained
for T in 5 10 20 30 40; do
  python generalize.py --runs_dir=trained_networks/FreeRT_untrained --n_runs=5 --decoder=both --protocol=both \
    --timing="{'fixation': 100, 'stimulus': ${T}00, 'delay': 0, 'decision': 100}" --label=FreeRT_T${T}_untrained
done
for T in 5 30; do
  python train.py --task=LinearClassificationBound --CE_loss=False --timing="{'fixation': 0, 'stimulus': ${T}00, 'delay': 0, 'decision': 0}" \
    --n_batch=0 --n_task=24 --runs=5 --out_dir=trained_networks/FreeRT5a_T${T}_untrained
  python generalize.py --runs_dir=trained_networks/FreeRT5a_T${T}_untrained --n_tasks=[24] --n_runs=5 --decoder=both --protocol=both --label=FreeRT5a_T${T}_untrained
done
python generalize.py --runs_dir=trained_networks/RNN --n_tasks=[2,24] --n_runs=5 --split_var=True --decoder=both --protocol=both --label=RNN_halfplanes
python generalize.py --runs_dir=trained_networks/RNN --n_runs=10 --out_of_distribution=False --decoder=both --label=RNN   # RNN_ID(_lstsq)
# GPT-2's sweep retrained as the same ensemble (reproduces the committed files) and evaluated with both decoders
python train.py --network=gpt-2 --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/gpt-2
python generalize.py --runs_dir=trained_networks/gpt-2 --n_runs=5 --select="{'network': 'gpt-2'}" --decoder=both --protocol=both --label=gpt-2
python analyze_transformer.py --runs_dir=trained_networks/gpt-2
python Figures/run_notebooks.py metrics && cp Figures/out/metrics*.png docs/figures/

# Session 18: the non-leaky RNN, LSTM and quadratic-encoder sweeps retrained (bit-identical Adam
# files) and evaluated with both decoders and the metrics; the release's D-sweep design (5b) begun
python train.py --leaky=False --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/RNN_NoLeak
python generalize.py --runs_dir=trained_networks/RNN_NoLeak --n_runs=5 --decoder=both --protocol=both --label=RNN_NoLeak
python train.py --network=LSTM --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/LSTM --resume=True
python generalize.py --runs_dir=trained_networks/LSTM --n_runs=5 --select="{'network': 'LSTM'}" --decoder=both --protocol=both --label=LSTM
python train.py --activ_enc=Quad --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/Quad
python generalize.py --runs_dir=trained_networks/Quad --n_runs=5 --decoder=both --protocol=both --label=Quad
for D in 2 4; do  # the rest: python sweep.py fig5b_S12 (D = 6, 8, 10 and the GPT-2 panel)
  python train.py --task=LinearClassificationHighDim --n_dim=$D --boundary_seed=None --n_task=[3,6,9,12,24] --runs=5 --out_dir=trained_networks/HighDim5b_D$D
  python generalize.py --runs_dir=trained_networks/HighDim5b_D$D --n_tasks=[3,6,9,12,24] --n_runs=5 --split_var=True --save_decoders=False --decoder=both --protocol=both --label=HighDim5b_D$D
done
for D in 2 4 6 8 10; do  # their untrained baselines
  python train.py --task=LinearClassificationHighDim --n_dim=$D --boundary_seed=None --n_batch=0 --n_task=[3,6,9,12,24] --runs=5 --out_dir=trained_networks/HighDim5b_D${D}_untrained
  python generalize.py --runs_dir=trained_networks/HighDim5b_D${D}_untrained --n_tasks=[3,6,9,12,24] --n_runs=5 --split_var=True --save_decoders=False --decoder=both --protocol=both --label=HighDim5b_D${D}_untrained
done

# Session 19: Figure 5b (the release's design) at D = 6 and 8 with S6b's sparsity, Figure 5c at
# the paper's budget for every sigma and S3b's correlation 0 (replacing the 2e4 files), and untrained baselines.
# (What remained after it was made in session 20 below; `python sweep.py fig5b_S12` runs the GPT-2 panel still missing.)
for D in 6 8; do  # D = 10: python sweep.py fig5b_S12
  python train.py --task=LinearClassificationHighDim --n_dim=$D --boundary_seed=None --n_task=[3,6,9,12,24] --runs=5 --out_dir=trained_networks/HighDim5b_D$D
  python generalize.py --runs_dir=trained_networks/HighDim5b_D$D --n_tasks=[3,6,9,12,24] --n_runs=5 --split_var=True --save_decoders=False --decoder=both --protocol=both --label=HighDim5b_D$D
done
for D in 2 4 6 8; do
  python sparsity.py --runs_dir=trained_networks/HighDim5b_D$D --n_tasks=[3,6,9,12,24] --n_runs=5 --label=HighDim5b_D$D
done
python generalize.py --runs_dir=trained_networks/RNN --n_runs=5 --decoder=both --protocol=both --label=Noise_2 --overwrite=True
for n in 1 3 4 6; do
  python train.py --n_sd_in=$n --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/Noise_$n
  python generalize.py --runs_dir=trained_networks/Noise_$n --n_runs=5 --decoder=both --protocol=both --label=Noise_$n --overwrite=True
done
python generalize.py --runs_dir=trained_networks/RNN --n_runs=5 --protocol=both --label=Corr_0 --overwrite=True   # S3b, correlation 0
python train.py --n_batch=0 --n_task=[3,6,12] --runs=5 --out_dir=trained_networks/RNN_untrained
python generalize.py --runs_dir=trained_networks/RNN_untrained --n_runs=5 --decoder=both --protocol=both --label=Noise_2_untrained
for D in 2; do  # the untrained baseline of the GPT-2 panel (D = 4 to 10: python sweep.py fig5b_S12)
  python train.py --network=gpt-2 --task=LinearClassificationHighDim --n_dim=$D --boundary_seed=None --n_batch=0 --n_task=[3,6,9,12,24] --runs=5 --out_dir=trained_networks/HighDim5b_gpt-2_D${D}_untrained
  python generalize.py --runs_dir=trained_networks/HighDim5b_gpt-2_D${D}_untrained --n_tasks=[3,6,9,12,24] --n_runs=5 --select="{'network': 'gpt-2'}" --split_var=True --save_decoders=False --decoder=both --protocol=both --label=HighDim5b_gpt-2_D${D}_untrained
done

# Session 20: Figure 5b's release design completed at D = 10 (with S6b's sparsity), S5c's free-RT
# sweep at the paper's budget (replacing the 2e4 files), 5a's trained-at-20 curve re-evaluated from it,
# and S3b's correlations 0.3-0.9 at the paper's budget, the GPT-2 panel's untrained baseline at D = 4, 6 and 8
python train.py --task=LinearClassificationHighDim --n_dim=10 --boundary_seed=None --n_task=[3,6,9,12,24] --runs=5 --out_dir=trained_networks/HighDim5b_D10 --resume=True
python generalize.py --runs_dir=trained_networks/HighDim5b_D10 --n_tasks=[3,6,9,12,24] --n_runs=5 --split_var=True --save_decoders=False --decoder=both --protocol=both --label=HighDim5b_D10
python sparsity.py --runs_dir=trained_networks/HighDim5b_D10 --n_tasks=[3,6,9,12,24] --n_runs=5 --label=HighDim5b_D10
python train.py --task=LinearClassificationBound --CE_loss=False --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/FreeRT
python generalize.py --runs_dir=trained_networks/FreeRT --n_runs=5 --decoder=both --protocol=both --label=FreeRT --overwrite=True
for T in 5 10 20 30 40; do
  python generalize.py --runs_dir=trained_networks/FreeRT --n_runs=5 --timing="{'fixation': 100, 'stimulus': $((100*T)), 'delay': 0, 'decision': 100}" --decoder=both --protocol=both --label=FreeRT_T$T --overwrite=True
done
for c in 0.3 0.5 0.7 0.9; do  # S3b at the paper's budget (replacing the 2e4 files)
  python train.py --corr=$c --n_task=[2,3,6,12,24] --runs=5 --out_dir=trained_networks/Corr_$c
  python generalize.py --runs_dir=trained_networks/Corr_$c --n_runs=5 --protocol=both --label=Corr_$c --overwrite=True
done
for D in 4 6 8; do
  python train.py --network=gpt-2 --task=LinearClassificationHighDim --n_dim=$D --boundary_seed=None --n_batch=0 --n_task=[3,6,9,12,24] --runs=5 --out_dir=trained_networks/HighDim5b_gpt-2_D${D}_untrained
  python generalize.py --runs_dir=trained_networks/HighDim5b_gpt-2_D${D}_untrained --n_tasks=[3,6,9,12,24] --n_runs=5 --select="{'network': 'gpt-2'}" --split_var=True --save_decoders=False --decoder=both --protocol=both --label=HighDim5b_gpt-2_D${D}_untrained
done
python - <<'EOF'   # 5a: scale and conditioning of the free-RT states at T = 20 and 40 (docs/results.md)
import numpy as np, checkpoints, tasks, networks, decoding
for path in checkpoints.find_runs('trained_networks/FreeRT', n_task=24)[:3]:
    net, encoder, config = checkpoints.load_network(path)[:3]
    rng = np.random.default_rng(0)
    for T in (20, 40):
        env = tasks.decoding_env(config, [1, 2, 3, 4], {'fixation': 100, 'stimulus': 100 * T, 'delay': 0, 'decision': 100})
        print(path, T, decoding.state_conditioning(networks.hidden_states(net, encoder, env, env.sample(rng, 2000)['ob'], last_only=True)))
EOF

# 5. Every figure from the result files (Figures/out/), and the copies the README and docs/ show (docs/figures/)
python Figures/run_notebooks.py   # 5b/S12/S6b: the release's design (--prefix=HighDim draws the committed one)
python Figures/run_notebooks.py fig3b fig3c fig5a fig5b_S12 fig5c S1 S3b S5c --protocol=paper --out_dir=Figures/out/paper
python Figures/run_notebooks.py fig3a fig3b S1 S5c fig5a fig5b_S12 fig5c --decoder=both --out_dir=Figures/out/both   # the OOD images of docs/figures
python Figures/run_notebooks.py fig3b S1 S5c fig5a fig5b_S12 fig5c --decoder=both --protocol=paper --out_dir=Figures/out/both/paper
python Figures/run_notebooks.py fig3b --labels="{'RNN': 'RNN', 'RNN_2e4': 'RNN'}" --out_dir=Figures/out/2e4
python Figures/run_notebooks.py S6 --labels="{'RNN': 'RNN', 'RNN_2e4': 'RNN'}" --out_dir=Figures/out/2e4
cp Figures/out/*.png docs/figures/
for f in fig3b S6a; do cp Figures/out/2e4/$f.png docs/figures/${f}_2e4.png; done
for f in Figures/out/paper/*.png; do cp "$f" "docs/figures/$(basename "$f" .png)_paper.png"; done
cp Figures/out/both/*.png docs/figures/
for f in Figures/out/both/paper/*.png; do cp "$f" "docs/figures/$(basename "$f" .png)_paper.png"; done
