import functools
import os
import sys

import matplotlib
import pytest
import torch

# Tests run headless and import the flat top-level modules of the repo.
matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(1)


@pytest.fixture
def quick_metrics(monkeypatch):
    """The abstraction and disentanglement metrics of every evaluation with 2 resamples
    and 2 draws of each null model instead of 20: most of a tiny network's evaluation
    time, for tests of what the scripts do around them (the metrics themselves are tested
    in test_metrics.py and test_disentanglement.py at their defaults)."""
    import disentanglement
    import metrics
    monkeypatch.setattr(metrics, 'ABSTRACTION_BOOT', 2)
    monkeypatch.setattr(disentanglement, 'network_metrics',
                        functools.partial(disentanglement.network_metrics, n_shuffles=2))
