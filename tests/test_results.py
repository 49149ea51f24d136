"""results.py: result names, reading and the one atomic writer, the guard that keeps
results made from other networks, per-network values and the bootstrap interval of
their median."""
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_per_network_means_over_splits_and_fits_and_skips_nans():
    values = np.arange(2 * 3 * 4 * 2, dtype=float).reshape(2, 3, 4, 2)
    values[1, 2] = np.nan  # a network not evaluated
    nets = results.per_network(values)
    np.testing.assert_allclose(nets[0], values[0].reshape(3, -1).mean(1))
    assert np.isnan(nets[1, 2]) and np.isfinite(nets[1, :2]).all()


def test_bootstrap_interval_covers_the_median_and_shrinks_with_more_networks():
    rng = np.random.default_rng(0)
    few, many = rng.normal(0.9, 0.05, 6), rng.normal(0.9, 0.05, 200)
    m, lo, hi = results.bootstrap_median_ci(few)
    assert lo <= m <= hi and m == np.median(few)
    _, lo2, hi2 = results.bootstrap_median_ci(many)
    assert hi2 - lo2 < (hi - lo) / 2 and lo2 < 0.9 < hi2
    assert results.bootstrap_median_ci(few, seed=3) == results.bootstrap_median_ci(few, seed=3)
    assert np.isnan(results.bootstrap_median_ci([np.nan])[0])


def test_network_summary_is_json_ready():
    values = np.full((2, 3, 4), 0.8)
    values[1] = np.nan
    s = results.network_summary(values)
    assert s['median'][0] == 0.8 and s['median'][1] is None and s['per_network'][1] == [None] * 3


def test_partial_results_are_reused_only_for_the_same_settings_and_network(tmp_path):
    part = results.Partial(str(tmp_path / 'RNN'), {'seed': 0, 'decoder': 'lstsq'})
    assert part.load('runs/nTask2_run0', ['a', 1, 2]) is None  # nothing saved yet
    part.save('runs/nTask2_run0', ['a', 1, 2], r_sq=np.arange(4.0))
    np.testing.assert_array_equal(part.load('runs/nTask2_run0', ['a', 1, 2])['r_sq'], np.arange(4.0))
    assert part.load('runs/nTask2_run0', ['a', 1, 3]) is None  # the checkpoint changed
    assert results.Partial(str(tmp_path / 'RNN'), {'seed': 1, 'decoder': 'lstsq'}).load('runs/nTask2_run0', ['a', 1, 2]) is None
    (tmp_path / 'RNN.partial' / 'nTask4_run0.npz').write_bytes(b'PK\x03\x04 cut short')
    assert part.load('runs/nTask4_run0', ['b', 1, 2]) is None
    part.clear()
    assert not (tmp_path / 'RNN.partial').exists()


def test_result_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        results.save_results(str(tmp_path / 'a.npz'), x=np.zeros(2))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / 'a.npz').st_mode) == 0o640


def test_paired_differences_with_interval_and_signed_rank_test():
    rng = np.random.default_rng(1)
    b = rng.normal(0.9, 0.05, 12)
    a = b + 0.02 + rng.normal(0, 0.005, 12)  # a is better in every pair
    res = results.paired(a, b)
    assert res['n'] == 12 and abs(res['mean'] - 0.02) < 0.005
    assert 0 < res['ci_low'] < res['mean'] < res['ci_high'] and res['p_wilcoxon'] < 0.01
    same = results.paired(b + rng.normal(0, 0.01, 12), b)
    assert same['ci_low'] < 0 < same['ci_high'] and same['p_wilcoxon'] > 0.01
    assert results.paired([0.9, np.nan], [0.8, 0.7])['n'] == 1


def test_history_keeps_100_window_means():
    h = np.arange(2 * 3000, dtype=float).reshape(2, 3000)
    short = results.history(h)
    assert short.shape == (2, 100) and np.allclose(short[:, 0], h[:, :30].mean(1))
    assert np.allclose(short[:, -1], h[:, -30:].mean(1))
    assert results.history(h[:, :50]).shape == (2, 50)  # shorter ones stay


# ---------------------------------------------------------------------------------
# Names, reading, writing, and results made from other networks

def test_result_names_are_built_in_one_place_and_read_back():
    assert results.result_name('RNN') == 'RNN'
    assert results.result_name('RNN', out_of_distribution=False) == 'RNN_ID'
    assert results.result_name('RNN', protocol='paper') == 'RNN_paper'
    assert results.result_name('RNN', decoder='lstsq') == 'RNN_lstsq'
    assert results.result_name('RNN', protocol='paper', decoder='lstsq') == 'RNN_paper_lstsq'
    assert results.result_name('HighDim_D4', sparsity=True) == 'sparsity_HighDim_D4'
    for args in ({}, {'out_of_distribution': False}, {'protocol': 'paper', 'decoder': 'lstsq'},
                 {'out_of_distribution': False, 'decoder': 'lstsq'}):
        parts = results.parse_name(results.result_name('Corr_0.3', **args))
        assert parts['label'] == 'Corr_0.3' and all(parts[k] == v for k, v in args.items())
    assert results.parse_name('sparsity_RNN') == {'label': 'RNN', 'sparsity': True}


def one_line_error(call):
    with pytest.raises(ValueError) as e:
        call()
    assert len(str(e.value).splitlines()) == 1
    return str(e.value)


@pytest.mark.parametrize('content', [b'', b'PK\x03\x04 cut short', bytes(range(256)) * 4, 'truncated'],
                         ids=['empty', 'not_a_zip', 'random_bytes', 'truncated'])
def test_unreadable_result_files_are_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / 'RNN.npz'
    if content == 'truncated':
        results.save_results(str(path), r_sq=np.zeros((2, 3, 4)), n_tasks=np.array([2, 3]))
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    message = one_line_error(lambda: results.load_results(str(tmp_path), 'RNN'))
    assert str(path) in message and 'remake it or delete it' in message and 'allow_pickle' not in message


def test_pickled_and_incomplete_result_files_are_refused(tmp_path):
    np.save(tmp_path / 'obj.npy', np.array([{'a': 1}], dtype=object))  # a pickle inside
    os.replace(tmp_path / 'obj.npy', tmp_path / 'RNN.npz')
    message = one_line_error(lambda: results.load_results(str(tmp_path), 'RNN'))
    assert str(tmp_path / 'RNN.npz') in message and 'allow_pickle' not in message
    results.save_results(str(tmp_path / 'RNN.npz'), n_tasks=np.array([2]), angles=np.zeros(2))
    assert "no r_sq (it holds angles, n_tasks)" in one_line_error(lambda: results.load_results(str(tmp_path), 'RNN'))
    results.save_results(str(tmp_path / 'sparsity_RNN.npz'), n_tasks=np.array([2]), r_sq=np.zeros(2))
    assert 'no sparsity' in one_line_error(lambda: results.load_results(str(tmp_path), 'sparsity_RNN'))
    with pytest.raises(FileNotFoundError, match='missing.npz not found'):
        results.load_results(str(tmp_path), 'missing')


def test_the_one_writer_is_atomic_for_arrays_json_and_text(tmp_path):
    results.save(str(tmp_path / 'a.npz'), {'x': np.arange(3)})
    results.save(str(tmp_path / 'a.json'), {'x': np.arange(3)})
    results.save(str(tmp_path / 'a.html'), '<p>é</p>')
    with np.load(tmp_path / 'a.npz') as f:
        assert f['x'].tolist() == [0, 1, 2]
    assert json.load(open(tmp_path / 'a.json')) == {'x': [0, 1, 2]}
    assert (tmp_path / 'a.html').read_text(encoding='utf-8') == '<p>é</p>'
    with pytest.raises(TypeError):  # a write that fails half-way leaves the old file and no temporary
        results.save(str(tmp_path / 'a.json'), {'x': object()})
    assert json.load(open(tmp_path / 'a.json')) == {'x': [0, 1, 2]}
    assert sorted(os.listdir(tmp_path)) == ['a.html', 'a.json', 'a.npz']



def test_the_writer_needs_no_torch_and_is_the_one_checkpoints_uses(tmp_path):
    code = ('import sys, numpy as np, results; results.save(sys.argv[1] + "/a.npz", {"x": np.arange(2)}); '
            'results.save(sys.argv[1] + "/a.json", {"x": np.float32(1)}); assert "torch" not in sys.modules, "torch"')
    subprocess.run([sys.executable, '-c', code, str(tmp_path)], check=True, cwd=REPO)
    assert json.load(open(tmp_path / 'a.json')) == {'x': 1.0}
    import checkpoints
    import torch
    assert checkpoints.save_json is results.save_json and checkpoints.atomic_write is results.atomic_write
    results.save(str(tmp_path / 't.json'), {'t': torch.arange(3)})  # a tensor, where torch is loaded
    assert json.load(open(tmp_path / 't.json')) == {'t': [0, 1, 2]}

def made_from(tmp_path, networks, batches, broken=None):
    """results/RNN.npz and the JSON saying it was made from `networks` ({n_task: [folder]})."""
    results.save_results(str(tmp_path / 'RNN.npz'), r_sq=np.zeros(2), n_tasks=np.array([2]))
    results.save(str(tmp_path / 'RNN.json'), {'config': {'runs_dir': 'trained_networks/RNN'}, 'networks': networks,
                                              'batches': batches, 'broken': broken or {}})
    return str(tmp_path / 'RNN.npz'), str(tmp_path / 'RNN.json')


def test_results_made_from_other_networks_are_not_replaced(tmp_path):
    paper = {'2': ['trained_networks/RNN/nTask2_run0', 'trained_networks/RNN/nTask2_run1']}
    out, record = made_from(tmp_path, paper, [[1e5, 1e5]])
    newcomer = {'trained_networks/nTask2_run0': 200}
    with pytest.raises(FileExistsError) as e:
        results.refuse_replacing(out, record, newcomer, overwrite=False)
    message = str(e.value)
    assert len(message.splitlines()) == 1 and message.startswith(f'{out} was made from 2 network(s)')
    assert "runs_dir='trained_networks/RNN'" in message and '100000 batches' in message
    assert '--overwrite=True' in message and '--label' in message
    results.refuse_replacing(out, record, newcomer, overwrite=True)  # asked for: replaced
    same = {'trained_networks/RNN/nTask2_run0': 1e5, './trained_networks/RNN/nTask2_run1': 1e5}
    results.refuse_replacing(out, record, same, overwrite=False)  # the same networks again
    results.refuse_replacing(out, record, {**same, 'trained_networks/RNN/nTask2_run2': 1e5}, overwrite=False)  # more
    with pytest.raises(FileExistsError, match='1 of them are not among'):  # one of them trained for less
        results.refuse_replacing(out, record, {'trained_networks/RNN/nTask2_run0': 1e5,
                                               'trained_networks/RNN/nTask2_run1': 2e4}, overwrite=False)
    with pytest.raises(FileExistsError, match='1 of them are not among'):  # fewer networks
        results.refuse_replacing(out, record, {'trained_networks/RNN/nTask2_run0': 1e5}, overwrite=False)


def test_finished_and_repaired_runs_replace_their_own_results(tmp_path):
    runs = {'2': ['nets/nTask2_run0', 'nets/nTask2_run1']}
    out, record = made_from(tmp_path, runs, [[20, None]], broken={'nets/nTask2_run1': 'no net.pth'})
    results.refuse_replacing(out, record, {'nets/nTask2_run0': 60, 'nets/nTask2_run1': 60}, overwrite=False)
    os.remove(record)  # a file that does not say what it was made from (e.g. the paper's)
    with pytest.raises(FileExistsError, match='networks it does not record'):
        results.refuse_replacing(out, record, {'nets/nTask2_run0': 60}, overwrite=False)
    results.refuse_replacing(str(tmp_path / 'new.npz'), str(tmp_path / 'new.json'), {}, overwrite=False)


def test_versus_baseline_pools_the_baseline_and_brackets_the_difference():
    rng = np.random.default_rng(0)
    trained = np.stack([0.6 + 0.01 * rng.standard_normal((10, 4, 5)), 0.9 + 0.01 * rng.standard_normal((10, 4, 5))])
    untrained = np.full((2, 5, 4, 5), 0.7)
    untrained[1, :, 0, 0] = np.nan  # a missing fit does not drop its network
    rows = results.versus_baseline(trained, untrained)
    assert np.allclose([r['untrained'] for r in rows], 0.7)
    assert rows[0]['diff'] < 0 < rows[1]['diff']  # below the baseline at the first count, above it at the second
    for r in rows:
        assert r['ci_low'] <= r['diff'] <= r['ci_high'] and r['ci_high'] - r['ci_low'] < 0.05
        assert abs(r['diff'] - (r['trained'] - r['untrained'])) < 1e-12


def test_baseline_report_compares_each_sweep_with_its_untrained_networks(tmp_path):
    rng = np.random.default_rng(1)
    def write(name, level, n_tasks):
        r_sq = level + 0.01 * rng.standard_normal((len(n_tasks), 5, 4, 2))
        results.save_results(str(tmp_path / f'{name}.npz'), r_sq=r_sq, n_tasks=np.array(n_tasks))
    write('A', 0.9, [2, 24])
    write('A_lstsq', 0.92, [2, 24])
    write('A_untrained', 0.1, [2, 24])
    write('A_untrained_lstsq', 0.8, [2, 24])
    write('B', 0.9, [24])  # no baseline: no row
    lines = results.baseline_report(str(tmp_path), [('A', 'A_untrained'), ('B', 'B_untrained')])
    assert len(lines) == 3 and lines[2].startswith('| A | correct | 2 → 24 |')
    cells = [c.strip() for c in lines[2].split('|')[1:-1]]
    assert cells[5:7] == ['0.100', '0.800'] or abs(float(cells[5]) - 0.1) < 0.01 and abs(float(cells[6]) - 0.8) < 0.01
    assert cells[7].startswith('+0.1') and cells[9].startswith('+0.1')  # 0.9 - 0.8 and 0.92 - 0.8
