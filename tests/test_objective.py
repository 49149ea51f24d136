"""objective.py: readouts, targets, step weights, the two BCE losses."""
import numpy as np
import pytest
import torch

import tasks
import train
from objective import Objective

CONFIG = train.defaults()


def objective(**over):
    """The Objective of the default configuration with `over`, on its own task."""
    config = dict(CONFIG, **over)
    return Objective(config, tasks.training_env(config))


def test_bce_targets_and_readouts():
    gt = torch.tensor([0.0, 1.0, -1.0])
    assert objective().targets(gt).tolist() == [0.5, 1.0, 0.0]
    assert objective(CE_loss=False).targets(gt).tolist() == [0.0, 1.0, -1.0]
    z = torch.tensor([0.0, 100.0])
    assert objective().squash(z).tolist() == [0.5, 1.0]
    assert objective(CE_loss=False).squash(z).tolist() == [0.0, 1.0]
    bound = objective(task='LinearClassificationBound', CE_loss=False)
    assert bound.squash(z).tolist() == [0.0, 5.0] and bound.kind == 'bound_tanh'
    assert objective().threshold == 0.5 and bound.threshold == 0.0
    for loss in ('paper', 'logits'):
        value = objective(loss=loss).step_losses(torch.zeros(1, 3), torch.zeros(1, 3))
        torch.testing.assert_close(value, torch.full((1, 3), np.log(2), dtype=torch.float32))


def test_paper_loss_is_bce_on_the_float32_sigmoid_with_its_saturation():
    z = torch.tensor([[20.0, -20.0, 100.0, 0.3, -100.0, 16.0]])
    gt = torch.tensor([[1.0, 1.0, -1.0, 0.0, 1.0, -1.0]])  # targets 1, 1, 0, 0.5, 1, 0
    target = (gt + 1) / 2
    ours, ref = z.clone().requires_grad_(), z.clone().requires_grad_()
    loss = objective(loss='paper').step_losses(ours, gt)
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
    objective(loss='logits').step_losses(logits, gt).sum().backward()
    assert logits.grad[0, 2] == pytest.approx(1.0) and logits.grad[0, 4] == pytest.approx(-1.0)
    assert 0 < loss[0, 1] < 100 and ours.grad[0, 1] < 0  # sigmoid(-20) is still > 0 in float32


def test_step_weights_sum_to_one_and_weigh_as_documented():
    dec = tasks.training_env(CONFIG).period_mask('decision')  # 22 steps, the last is the decision
    w = objective().step_weights(dec)
    torch.testing.assert_close(w, torch.full((22,), 1 / 22))
    w = objective(bal_err=True).step_weights(dec)
    assert w[-1] == pytest.approx(0.5) and w[:-1].sum() == pytest.approx(0.5)
    w = objective(pen_end=True).step_weights(dec)
    assert w[-1] == 1 and w.sum() == 1
    g = torch.Generator().manual_seed(0)
    w = objective(rand_pen=True).step_weights(dec, g, (500,))
    assert w.shape == (500, 22) and torch.all(w.sum(-1) == 1) and torch.all(w.max(-1).values == 1)
    assert len(torch.unique(w.argmax(-1))) > 15  # the penalised step varies across trials


def test_the_readout_kind_is_read_from_the_task_not_its_name():
    class Accumulators(tasks.LinearClassificationCentOut):  # another name, the bound readout
        readout = 'bound_tanh'

    assert Objective(CONFIG, Accumulators()).kind == 'bound_tanh'
    assert Objective(CONFIG, tasks.LinearClassificationCentOut()).kind == 'sigmoid'
    assert Objective(dict(CONFIG, CE_loss=False), tasks.LinearClassificationCentOut()).kind == 'tanh'
    # the configuration's task name plays no part: the task object decides
    named_bound = dict(CONFIG, task='LinearClassificationBound')
    assert Objective(named_bound, tasks.LinearClassificationCentOut()).kind == 'sigmoid'


@pytest.mark.parametrize('loss', ['paper', 'logits'])
def test_nan_logits_give_nan_losses_not_an_error(loss):
    z = torch.tensor([[float('nan'), 0.3, -2.0]], requires_grad=True)
    gt = torch.tensor([[1.0, 0.0, -1.0]])
    value = objective(loss=loss).step_losses(z, gt)  # BCELoss alone raises on the NaN
    assert torch.isnan(value[0, 0]) and torch.isfinite(value[0, 1:]).all()
    value[0, 1:].sum().backward()  # the finite steps keep their exact loss and gradient
    ref = z.detach()[:, 1:].clone().requires_grad_()
    expected = objective(loss=loss).step_losses(ref, gt[:, 1:])
    torch.testing.assert_close(value[:, 1:], expected, rtol=0, atol=0)
    expected.sum().backward()
    torch.testing.assert_close(z.grad[:, 1:], ref.grad, rtol=0, atol=0)


def test_batch_loss_averages_active_outputs_weighted_steps_and_trials():
    obj = objective(loss='logits')
    logits = torch.zeros(2, 3, 4, 5)  # (M, B, T, n_out): every step loss is ln 2 ...
    logits[1, :, -1, :2] = 100.0  # ... but member 1 answers 1 at the last step on outputs 0 and 1
    gt = torch.zeros(2, 3, 4, 5)
    gt[:, :, -1] = 1.0
    active = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])[None, None, None].expand(2, 1, 1, 5)
    pen_end = torch.tensor([0.0, 0.0, 0.0, 1.0])
    loss = obj.batch_loss(logits, gt, active, pen_end)
    assert loss.shape == (2,)
    assert loss[0].item() == pytest.approx(np.log(2)) and loss[1].item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.full((4,), 0.25)
    assert obj.batch_loss(logits, gt, active, uniform)[1].item() == pytest.approx(0.75 * np.log(2))
    acc, conf = obj.decision_scores(logits, gt, active, torch.tensor([3]))
    assert acc.tolist() == [0.0, 1.0]  # the inactive outputs 2-4 do not count
    assert conf.tolist() == [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]  # true x predicted


@pytest.mark.parametrize('over', [dict(loss='paper'), dict(loss='logits'), dict(CE_loss=False)],
                         ids=['paper', 'logits', 'mse'])
def test_batch_loss_on_active_outputs_alone_equals_the_full_loss_times_the_mask(over):
    # On the CPU batch_loss computes the step losses of the active outputs only: the loss
    # and the gradient must be exactly those of every output's loss times the mask.
    obj = objective(**over)
    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(3, 4, 5, 6, generator=gen)).requires_grad_()
    logits.data[0, 1, 2, 0] = 40.0  # the paper's BCE: a sigmoid that rounds to 1
    gt = torch.randint(-1, 2, (3, 4, 5, 6), generator=gen).float()
    active = torch.zeros(3, 1, 1, 6)
    active[0, ..., :2], active[1, ..., 2:5], active[2] = 1, 1, 1  # a slice per member, or all
    weights = torch.rand(3, 4, 5, generator=gen)
    ours = obj.batch_loss(logits, gt, active, weights)
    ours.sum().backward()
    full = logits.detach().clone().requires_grad_()
    expected = ((obj.step_losses(full, gt) * active).sum(-1) / active.sum(-1) * weights).sum(-1).mean(-1)
    expected.sum().backward()
    assert torch.equal(ours, expected) and torch.equal(logits.grad, full.grad)
    assert (logits.grad[0, ..., 2:] == 0).all() and (logits.grad[0, ..., :2] != 0).any()
    # a mask that varies over trials and steps too (the general path of active_indices)
    varied = torch.rand(3, 4, 5, 6, generator=gen).round()
    varied[..., 0] = 1
    expected = ((obj.step_losses(full, gt) * varied).sum(-1) / varied.sum(-1) * weights).sum(-1).mean(-1)
    assert torch.equal(obj.batch_loss(logits, gt, varied, weights), expected)
    logits.data[1, 0, 0, 3] = float('nan')  # a diverged member's loss is NaN, the others' stay finite
    nan = obj.batch_loss(logits, gt, active, weights)
    assert nan[1].isnan() and nan[[0, 2]].isfinite().all()
