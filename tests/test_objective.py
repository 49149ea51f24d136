"""objective.py: readouts, targets, step weights, the two BCE losses."""
import numpy as np
import pytest
import torch

import tasks
import train
from objective import Objective

CONFIG = train.defaults()


def test_bce_targets_and_readouts():
    gt = torch.tensor([0.0, 1.0, -1.0])
    assert Objective(CONFIG).targets(gt).tolist() == [0.5, 1.0, 0.0]
    assert Objective(dict(CONFIG, CE_loss=False)).targets(gt).tolist() == [0.0, 1.0, -1.0]
    z = torch.tensor([0.0, 100.0])
    assert Objective(CONFIG).squash(z).tolist() == [0.5, 1.0]
    assert Objective(dict(CONFIG, CE_loss=False)).squash(z).tolist() == [0.0, 1.0]
    bound = Objective(dict(CONFIG, task='LinearClassificationBound', CE_loss=False))
    assert bound.squash(z).tolist() == [0.0, 5.0] and bound.kind == 'bound_tanh'
    assert Objective(CONFIG).threshold == 0.5 and bound.threshold == 0.0
    for loss in ('paper', 'logits'):
        value = Objective(dict(CONFIG, loss=loss)).step_losses(torch.zeros(1, 3), torch.zeros(1, 3))
        torch.testing.assert_close(value, torch.full((1, 3), np.log(2), dtype=torch.float32))


def test_paper_loss_is_bce_on_the_float32_sigmoid_with_its_saturation():
    z = torch.tensor([[20.0, -20.0, 100.0, 0.3, -100.0, 16.0]])
    gt = torch.tensor([[1.0, 1.0, -1.0, 0.0, 1.0, -1.0]])  # targets 1, 1, 0, 0.5, 1, 0
    target = (gt + 1) / 2
    ours, ref = z.clone().requires_grad_(), z.clone().requires_grad_()
    loss = Objective(dict(CONFIG, loss='paper')).step_losses(ours, gt)
    expected = torch.nn.BCELoss(reduction='none')(torch.sigmoid(ref), target)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    loss.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad, rtol=0, atol=0)
    # saturated logits: the sigmoid rounds to exactly 1 (or 0), the log is clamped at
    # -100 and no gradient flows back; with logits the gradient is there
    assert loss[0, 2] == 100 and loss[0, 4] == 100
    assert ours.grad[0, 0] == 0 and ours.grad[0, 2] == 0 and ours.grad[0, 4] == 0
    logits = z.clone().requires_grad_()
    Objective(dict(CONFIG, loss='logits')).step_losses(logits, gt).sum().backward()
    assert logits.grad[0, 2] == pytest.approx(1.0) and logits.grad[0, 4] == pytest.approx(-1.0)
    assert 0 < loss[0, 1] < 100 and ours.grad[0, 1] < 0  # sigmoid(-20) is still > 0 in float32


def test_step_weights_sum_to_one_and_weigh_as_documented():
    dec = tasks.training_env(CONFIG).period_mask('decision')  # 22 steps, the last is the decision
    w = Objective(CONFIG).step_weights(dec)
    torch.testing.assert_close(w, torch.full((22,), 1 / 22))
    w = Objective(dict(CONFIG, bal_err=True)).step_weights(dec)
    assert w[-1] == pytest.approx(0.5) and w[:-1].sum() == pytest.approx(0.5)
    w = Objective(dict(CONFIG, pen_end=True)).step_weights(dec)
    assert w[-1] == 1 and w.sum() == 1
    g = torch.Generator().manual_seed(0)
    w = Objective(dict(CONFIG, rand_pen=True)).step_weights(dec, g, (500,))
    assert w.shape == (500, 22) and torch.all(w.sum(-1) == 1) and torch.all(w.max(-1).values == 1)
    assert len(torch.unique(w.argmax(-1))) > 15  # the penalised step varies across trials
