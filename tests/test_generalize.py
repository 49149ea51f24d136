"""generalize.py: the OOD protocol on tiny trained networks, result files, paper checkpoints."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import checkpoints
import decoding
import evaluation
import generalize
import metrics
import networks
import results
import tasks
import train
from configurator import hyperparameters

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('quick_metrics')]  # every test here trains networks; the metrics' null draws cut (conftest.quick_metrics)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT = {'fixation': 100, 'stimulus': 500, 'delay': 0, 'decision': 100}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Tiny RNNs (2 and 4 tasks, 2 runs each) and one LSTM, trained briefly."""
    root = tmp_path_factory.mktemp('nets')
    base = dict(train.defaults(), n_neu=16, timing=SHORT, n_batch=300, lr=1e-2, device='cpu',
                out_dir=str(root))
    train.train(dict(base, n_task=[2, 4], runs=2))
    train.train(dict(base, n_task=4, network='LSTM'))
    return str(root)


def settings(runs, tmp_path, **over):
    hp = dict(hyperparameters(vars(generalize)))  # the script's defaults, then:
    hp.update(runs_dir=runs, select={'network': 'RNN'}, n_tasks=[2, 4], n_runs=2, label='tiny',
              results_dir=str(tmp_path), out_of_distribution=True, decoder='lstsq', n_fit=2,
              decoder_batches={2: 40, 4: 40}, batch_sz=16, lr=3e-3, n_test=10, split=None, split_var=False,
              timing=None, seed=0, device='cpu')
    hp.update(over)
    return hp


def test_results_files_have_documented_keys_and_shapes(runs, tmp_path):
    path = generalize.generalize(settings(runs, tmp_path))
    res = results.load_results(str(tmp_path), 'tiny_lstsq')
    assert path.endswith('tiny_lstsq')
    assert res['r_sq'].shape == (2, 2, 4, 2)  # n_tasks × runs × quadrants × fits
    assert res['dec'].shape == (2, 2, 4, 2, 16, 2) and res['test'].shape == (2, 2, 4, 2)
    assert res['angles'].shape == (2, 2, 4, 2, 2, 2)
    assert res['ccgp'].shape == res['ps'].shape == (2, 2, 2)  # n_tasks × runs × (x1, x2)
    assert np.all((res['ccgp'] >= 0) & (res['ccgp'] <= 1)) and np.all(np.abs(res['ps']) <= 1)
    assert np.isfinite(res['angles'][..., 0, 1]).all() and np.isnan(res['angles'][..., 1, 0]).all()
    assert list(res['n_tasks']) == [2, 4]
    assert np.isfinite(res['r_sq']).all() and np.all(res['r_sq'] < 1)
    summary = json.load(open(tmp_path / 'tiny_lstsq.json'))
    assert len(summary['r_sq']['median']) == 2 and summary['config']['decoder'] == 'lstsq'
    assert summary['r_sq']['p25'][1] <= summary['r_sq']['median'][1] <= summary['r_sq']['p75'][1]
    for plot in ('tiny_lstsq_r2', 'tiny_lstsq_angle'):
        assert (tmp_path / f'{plot}.png').exists() and (tmp_path / f'{plot}.pdf').exists()
    # the disentanglement metrics beside OOD r² (issue 21): new keys, one value per network
    for key in ('dci_d', 'dci_c', 'dci_i', 'mig', 'n_silent', 'ccgp_mean', 'ps_mean', 'dci_d_null_hi', 'mig_null_p'):
        assert res[key].shape == (2, 2) and np.isfinite(res[key]).all(), key
    assert np.all((res['dci_d'] >= 0) & (res['dci_d'] <= 1)) and np.all((res['mig'] >= 0) & (res['mig'] <= 1))
    # the same CCGP averaged over (x1, x2), on the active units only (silent ones dropped, a different split)
    assert np.allclose(res['ccgp_mean'], res['ccgp'].mean(-1), atol=0.02)
    assert np.all(res['n_units'] == 16) and np.all(res['n_silent'] < 16)  # units in all, of which silent
    assert len(summary['disentanglement']['dci_d']['median']) == 2
    # CCGP and PS with their standard errors over resampled trials, and the interval over networks
    assert res['ccgp_se'].shape == res['ps_se'].shape == (2, 2, 2) and np.all(res['ccgp_se'] >= 0)
    assert summary['abstraction_trials'] == 500 and len(summary['ccgp_se']['median']) == 2
    for name in ('ccgp_networks', 'parallelism_networks'):
        row = summary[name]
        assert all(low <= m <= high for m, low, high in zip(row['median'], row['ci_low'], row['ci_high']))
    assert summary['ccgp_networks'] == results.network_summary(res['ccgp'])
    assert np.isnan(res['boundary_cond']).all() and 'boundary_cond' not in summary  # no class boundaries here


def test_the_condition_number_of_each_networks_boundaries_is_recorded(tmp_path):
    nets = tmp_path / 'nets'
    train.train(dict(train.defaults(), task='LinearClassificationHighDim', n_dim=3, n_task=[2, 5], runs=2, n_neu=16,
                     timing=SHORT, n_batch=5, device='cpu', out_dir=str(nets)))
    generalize.generalize(settings(str(nets), tmp_path, n_tasks=[2, 5], split_var=True, n_fit=1,
                                   decoder_batches={2: 10, 5: 10}))
    res = results.load_results(str(tmp_path), 'tiny_lstsq')
    direct = np.zeros((2, 2))  # 2 tasks in 3 dimensions: one direction unprobed, σ_min = 0
    for j in range(2):
        with open(glob.glob(str(nets / f'*nTask5_run{j}' / 'config.json'))[0]) as f:
            seed = json.load(f)['member_seed']
        normals = tasks.LinearClassificationHighDim(n_task=5, n_dim=3, boundary_seed=seed).normals
        s = np.linalg.svd(normals, compute_uv=False)
        direct[1, j] = s.min() / s.max()
    np.testing.assert_allclose(res['boundary_cond'], direct)
    assert 0 < direct[1].min() and direct[1, 0] != direct[1, 1]  # each network its own boundaries
    summary = json.load(open(tmp_path / 'tiny_lstsq.json'))
    np.testing.assert_allclose(summary['boundary_cond'], direct)


def test_without_decoders_the_same_numbers_and_no_dec_key(runs, tmp_path):
    hp = settings(runs, tmp_path, n_tasks=[4], n_runs=1)
    generalize.generalize(dict(hp, label='with'))
    generalize.generalize(dict(hp, label='without', save_decoders=False))
    full, small = (results.load_results(str(tmp_path), n) for n in ('with_lstsq', 'without_lstsq'))
    assert 'dec' in full and 'dec' not in small and set(full) - set(small) == {'dec'}
    for key in small:
        np.testing.assert_array_equal(full[key], small[key])


def test_in_distribution_fits_better_than_out_of_distribution(runs, tmp_path):
    generalize.generalize(settings(runs, tmp_path))
    generalize.generalize(settings(runs, tmp_path, out_of_distribution=False))
    ood = results.load_results(str(tmp_path), 'tiny_lstsq')['r_sq']
    iid = results.load_results(str(tmp_path), 'tiny_ID_lstsq')['r_sq']
    # briefly trained tiny networks decode x* well in distribution, not (yet) out of it
    assert np.median(iid) > 0.5 and np.median(iid) > np.median(ood) + 0.1


def test_adam_and_lstsq_decoders_agree(runs, tmp_path):
    hp = settings(runs, tmp_path, n_tasks=[4], n_runs=1, decoder_batches={4: 2000}, out_of_distribution=False,
                  lr=1e-2)
    lstsq = generalize.generalize(dict(hp, label='exact'))
    adam = generalize.generalize(dict(hp, label='adam', decoder='adam'))
    a = results.load_results(str(tmp_path), 'adam_ID')
    b = results.load_results(str(tmp_path), 'exact_ID_lstsq')
    assert abs(np.median(a['r_sq']) - np.median(b['r_sq'])) < 0.05
    assert a['train'].shape == (1, 1, 4, 2, 100)  # 100 means over windows of 20 batches
    assert np.nanmean(a['train'][..., -5:]) < np.nanmean(a['train'][..., :5])
    assert os.path.exists(adam + '_loss.png') and not os.path.exists(lstsq + '_loss.png')  # lstsq has no history


def test_lstm_is_evaluated_through_the_same_loader(runs, tmp_path):
    generalize.generalize(settings(runs, tmp_path, select={'network': 'LSTM'}, n_tasks=[4], n_runs=1,
                                   label='lstm', out_of_distribution=False))
    assert np.median(results.load_results(str(tmp_path), "lstm_ID_lstsq")["r_sq"]) > 0.5


def paper_checkpoint(folder, path):
    """Re-save one of our networks in the paper's legacy layout: numpy histories, no
    config, hyperparameters in the file name, non-zip torch format."""
    ckpt = checkpoints.load_checkpoint(os.path.join(folder, 'net.pth'))
    legacy = {'state_dict': ckpt['state_dict'], 'encoder': ckpt['encoder'],
              'loss_hist': ckpt['loss_hist'].numpy().astype(np.float64),
              'conf_matr_hist': ckpt['conf_matr_hist'].numpy()}
    torch.save(legacy, path, _use_new_zipfile_serialization=False)


def test_paper_checkpoint_loads_safely_and_evaluates(runs, tmp_path):
    folder = checkpoints.find_runs(runs, network='RNN', n_task=4)[0]
    paper_dir = tmp_path / 'paper'
    paper_dir.mkdir()
    name = 'RNN16batch1e5LR0.001Noise2NetN0nTrial1CElossnTask4Mix.pth'
    paper_checkpoint(folder, paper_dir / name)
    net, encoder, config = checkpoints.load_network(str(paper_dir / name))
    assert config['n_task'] == 4 and config['n_neu'] == 16 and config['encode'] and config['leaky']
    ours, _, _ = checkpoints.load_network(folder)
    u = torch.randn(3, 7, 41)
    torch.testing.assert_close(net(u)[0], ours(u)[0])
    assert checkpoints.find_runs(str(paper_dir), n_task=4) == [str(paper_dir / name)]
    # the paper's checkpoints are evaluated by the same protocol, with the same result
    generalize.generalize(settings(str(paper_dir), tmp_path, select={}, n_tasks=[4], n_runs=1,
                                   timing=SHORT, label='paper'))
    generalize.generalize(settings(runs, tmp_path, n_tasks=[4], n_runs=1, label='ours'))
    np.testing.assert_allclose(results.load_results(str(tmp_path), 'paper_lstsq')['r_sq'],
                               results.load_results(str(tmp_path), 'ours_lstsq')['r_sq'], rtol=1e-6)


def test_malicious_checkpoint_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {tmp_path}/pwned',))

    torch.save({'state_dict': {}, 'x': Evil()}, tmp_path / 'evil.pth', _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match='not a safe checkpoint'):
        checkpoints.load_checkpoint(str(tmp_path / 'evil.pth'))
    assert not (tmp_path / 'pwned').exists()
    (tmp_path / 'broken.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='corrupt'):
        checkpoints.load_checkpoint(str(tmp_path / 'broken.pth'))
    with pytest.raises(FileNotFoundError):
        checkpoints.load_network(str(tmp_path / 'missing'))


def test_bad_settings_fail_before_work(runs, tmp_path):
    with pytest.raises(ValueError, match='decoder'):
        generalize.generalize(settings(runs, tmp_path, decoder='ridge'))
    with pytest.raises(FileNotFoundError, match='n_task'):
        generalize.generalize(settings(runs, tmp_path, n_tasks=[3]))
    with pytest.raises(FileNotFoundError, match='runs_dir'):
        generalize.generalize(settings(str(tmp_path / 'nowhere'), tmp_path))
    assert not (tmp_path / 'tiny_lstsq.npz').exists()


def test_command_line(runs, tmp_path):
    out = subprocess.run([sys.executable, 'generalize.py', f'--runs_dir={runs}', '--n_tasks=[4]',
                          '--n_runs=1', '--decoder=lstsq', '--n_fit=1', '--n_test=5',
                          '--decoder_batches={4: 20}', f'--results_dir={tmp_path}', '--label=cli'],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / 'cli_lstsq.npz').exists()
    bad = subprocess.run([sys.executable, 'generalize.py', f'--runs_dir={runs}', '--n_tasks=[5]'],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and 'n_task' in bad.stderr


def test_results_record_the_protocol_and_per_network_values(runs, tmp_path):
    generalize.generalize(settings(runs, tmp_path, protocol='paper'))
    res = results.load_results(str(tmp_path), 'tiny_paper_lstsq')
    assert str(res['protocol']) == 'paper'
    summary = json.load(open(tmp_path / 'tiny_paper_lstsq.json'))
    nets = summary['r_sq_networks']
    assert summary['protocol'] == 'paper' and len(nets['per_network']) == 2
    assert len(nets['per_network'][0]) == 2  # two runs per task count
    np.testing.assert_allclose(nets['per_network'], res['r_sq'].mean((2, 3)))
    for i in range(2):
        assert nets['ci_low'][i] <= nets['median'][i] <= nets['ci_high'][i]


def test_both_protocols_in_one_pass_write_the_two_files(runs, tmp_path):
    generalize.generalize(settings(runs, tmp_path / 'one', protocol='correct'))
    generalize.generalize(settings(runs, tmp_path / 'one', protocol='paper'))
    generalize.generalize(settings(runs, tmp_path / 'both', protocol='both'))
    for name in ('tiny_lstsq', 'tiny_paper_lstsq'):
        a, b = (results.load_results(str(tmp_path / d), name) for d in ('one', 'both'))
        np.testing.assert_array_equal(a['r_sq'], b['r_sq'])
        assert str(a['protocol']) == str(b['protocol'])


def test_help_states_the_measured_cost_of_the_lstsq_decoder():
    out = subprocess.run([sys.executable, 'generalize.py', '--help'], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and '5-13 s/network' in out.stdout and '~1 s' not in out.stdout


def test_lstsq_results_have_their_own_name_and_plot_beside_their_in_distribution_file(runs, tmp_path):
    generalize.generalize(settings(runs, tmp_path, n_tasks=[4], n_runs=1, out_of_distribution=False))
    generalize.generalize(settings(runs, tmp_path, n_tasks=[4], n_runs=1))
    assert sorted(p.name for p in tmp_path.glob('*.npz')) == ['tiny_ID_lstsq.npz', 'tiny_lstsq.npz']
    assert generalize.plotted_with('tiny_paper_lstsq') == ['tiny_paper_lstsq', 'tiny_ID_lstsq']
    assert generalize.plotted_with('tiny_ID') == ['tiny', 'tiny_ID']


# ---------------------------------------------------------------------------------
# Untrained networks, Adam beside least squares, Adam's convergence

def test_untrained_networks_are_evaluated_as_finished_and_recorded_as_untrained(tmp_path):
    import sparsity
    nets = str(tmp_path / 'untrained')
    train.train(dict(train.defaults(), n_neu=16, timing=SHORT, n_batch=0, n_task=[2, 4], runs=2, device='cpu',
                     out_dir=nets))
    generalize.generalize(settings(nets, tmp_path, label='u'))  # unfinished=False: untrained is finished
    res = results.load_results(str(tmp_path), 'u_lstsq')
    assert np.all(res['batches'] == 0) and np.isfinite(res['r_sq']).all()
    assert json.load(open(tmp_path / 'u_lstsq.json'))['untrained'] is True
    sp = dict(hyperparameters(vars(sparsity)), runs_dir=nets, n_tasks=[2, 4], n_runs=2, label='u', n_stim=16,
              results_dir=str(tmp_path), device='cpu')
    sparsity.sparsity_sweep(sp)
    assert np.all(results.load_results(str(tmp_path), 'sparsity_u')['batches'] == 0)
    assert json.load(open(tmp_path / 'sparsity_u.json'))['untrained'] is True


def test_trained_networks_are_not_recorded_as_untrained(runs, tmp_path):
    generalize.generalize(settings(runs, tmp_path))
    assert json.load(open(tmp_path / 'tiny_lstsq.json'))['untrained'] is False


def test_decoder_both_equals_separate_adam_and_lstsq_runs(runs, tmp_path):
    hp = settings(runs, tmp_path, n_tasks=[4], protocol='both', decoder='adam')
    generalize.generalize(dict(hp, label='a'))
    generalize.generalize(dict(hp, label='l', decoder='lstsq'))
    generalize.generalize(dict(hp, label='b', decoder='both'))
    for ours, alone in (('b', 'a'), ('b_paper', 'a_paper'), ('b_lstsq', 'l_lstsq'), ('b_paper_lstsq', 'l_paper_lstsq')):
        x, y = (results.load_results(str(tmp_path), n) for n in (ours, alone))
        for key in ('r_sq', 'test', 'dec', 'angles', 'train', 'ccgp', 'ps', 'batches'):
            np.testing.assert_array_equal(x[key], y[key], err_msg=f'{ours} {key}')
        assert str(x['decoder']) == str(y['decoder']) == ('lstsq' if 'lstsq' in ours else 'adam')
        assert json.load(open(tmp_path / f'{ours}.json'))['decoder'] == str(x['decoder'])
    assert results.load_results(str(tmp_path), 'b_lstsq')['train'].shape[-1] == 0  # no history
    for name in ('b', 'b_lstsq'):  # Adam's convergence, known under both decoders' files
        np.testing.assert_array_equal(results.load_results(str(tmp_path), name)['adam_gap'],
                                      results.load_results(str(tmp_path), 'a')['adam_gap'])
    assert 'adam_gap' not in results.load_results(str(tmp_path), 'l_lstsq')


def test_an_unconverged_adam_decoder_is_reported_naming_the_network(runs, tmp_path, capsys):
    hp = settings(runs, tmp_path, n_tasks=[4], n_runs=1, decoder='adam', out_of_distribution=False)
    generalize.generalize(dict(hp, label='slow', lr=1e-5, decoder_batches={4: 200}))  # far too small a step
    err = capsys.readouterr().err
    folder = checkpoints.find_runs(runs, network='RNN', n_task=4)[0]
    assert f'warning: {folder}: the Adam decoder did not converge in 8 of 8 fits' in err
    res = results.load_results(str(tmp_path), 'slow_ID')
    assert np.all(res['converged'] == 0) and np.all(res['adam_gap'] > 0.05)
    assert json.load(open(tmp_path / 'slow_ID.json'))['adam_unconverged']['networks'] == [folder]
    generalize.generalize(dict(hp, label='fast', lr=1e-2, decoder_batches={4: 2000}))  # as in the agreement test
    assert 'warning' not in capsys.readouterr().err
    res = results.load_results(str(tmp_path), 'fast_ID')
    assert np.all(res['converged'] == 1) and np.all(res['adam_gap'] < 0.05)
    assert json.load(open(tmp_path / 'fast_ID.json'))['adam_unconverged'] == {
        'fits': 0, 'of': 8, 'networks': [], 'gap_max': decoding.GAP_MAX,
        'fall': {'window': metrics.FALL_WINDOW, 'rel_min': metrics.FALL_REL, 'z_min': metrics.FALL_Z}}


# ---------------------------------------------------------------------------------
# Throughput: cache-sized simulation, each network loaded once

def test_chunked_simulation_writes_the_numbers_of_one_pass_per_call(runs, tmp_path, monkeypatch):
    # hidden_states runs CPU evaluations in chunks of networks.CHUNK trials; every array and
    # JSON entry of all four files (Adam and lstsq, both protocols) must equal those of the
    # path the committed results were made with (4096 trials per pass: one pass per call here)
    hp = settings(runs, tmp_path, n_tasks=[4], n_runs=1, decoder='both', protocol='both', n_abstraction=100)
    sizes, simulate = [], networks.hidden_states
    monkeypatch.setattr(networks, 'hidden_states', lambda net, enc, env, ob, **kw: sizes.append(len(ob)) or
                        simulate(net, enc, env, ob, **kw))
    generalize.generalize(dict(hp, label='new'))
    assert max(sizes) > 3 * networks.CHUNK['cpu']  # the pools were simulated in several chunks
    monkeypatch.setattr(networks, 'CHUNK', {})  # every device: CHUNK_OTHER = 4096 trials per pass
    generalize.generalize(dict(hp, label='old'))
    for name in ('', '_paper', '_lstsq', '_paper_lstsq'):
        new, old = (results.load_results(str(tmp_path), label + name) for label in ('new', 'old'))
        assert list(new) == list(old)
        for key in old:
            np.testing.assert_array_equal(new[key], old[key], err_msg=f'{name} {key}')
        new, old = (json.load(open(tmp_path / f'{label}{name}.json')) for label in ('new', 'old'))
        for summary in (new, old):
            del summary['seconds'], summary['config']['label']
        assert new == old


def test_a_sweep_loads_each_network_once_unless_its_checkpoint_changes(runs, tmp_path, monkeypatch):
    calls, load = [], checkpoints._load_network
    monkeypatch.setattr(checkpoints, '_load_network', lambda path, *a, **kw: calls.append(path) or load(path, *a, **kw))
    sweep = evaluation.Sweep(settings(runs, tmp_path), 'generalize.py', ['once'], {})
    folders = [f for k in sweep.n_tasks for f in sweep.folders[k]]
    assert sorted(calls) == sorted(folders) and len(folders) == 4  # find_sweep loads each to classify it
    changed = os.path.join(folders[-1], checkpoints.CHECKPOINT)
    stat = os.stat(changed)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # retrained after find_sweep looked
    try:
        seen = []
        sweep.evaluate(lambda net, encoder, config, k: seen.append((net.training, config['run'])) or {'x': np.zeros(1)},
                       lambda arrays: '')
    finally:
        os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert calls[len(folders):] == [folders[-1]]  # only the changed one is loaded again
    assert seen == [(False, 0), (False, 1)] * 2 and sweep.loaded == {}  # in eval mode; none held after


def test_the_papers_files_are_loaded_again_when_evaluated_where_their_warning_is_said(runs, tmp_path):
    folder = checkpoints.find_runs(runs, network='RNN', n_task=4)[0]
    paper_checkpoint(folder, tmp_path / 'RNN16batch1e5LR0.001Noise2NetN0nTrial1CElossnTask4Mix.pth')
    kept = {}
    checkpoints.find_sweep(str(tmp_path), {}, [4], 1, loaded=kept)
    assert kept == {}  # find_sweep silenced the warning while classifying the file
    sweep = evaluation.Sweep(settings(str(tmp_path), tmp_path / 'out', select={}, n_tasks=[4], n_runs=1),
                             'generalize.py', ['paper'], {})
    with pytest.warns(UserWarning, match='did not save it'):
        sweep.evaluate(lambda net, encoder, config, k: {'x': np.zeros(1)}, lambda arrays: '')
