"""results.py: per-network values and the bootstrap interval of their median."""
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
