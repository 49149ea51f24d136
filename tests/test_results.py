"""results.py: per-network values and the bootstrap interval of their median."""
import os
import stat

import numpy as np

import results


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
