"""The training objective in one place (SPEC §3-4): how the linear readout is
squashed, the targets it is compared with, the weight of each step, the loss of a
batch, the decision threshold and the decision scores. What kind of readout a run has
is decided once, here, from its task and configuration:

- 'sigmoid' (CE_loss=True): BCE against targets 0.5 before the decision step and
  0/1 at it, either as the paper computes it (loss='paper': torch.nn.BCELoss on the
  float32 sigmoid, log clamped at -100, no gradient where the sigmoid rounds to
  exactly 0 or 1, |logit| above ≈ 16.6) or with logits (loss='logits');
- 'tanh' (CE_loss=False): MSE against the ±1 labels;
- 'bound_tanh' (a task whose `readout` says so: the free-RT task): MSE of bound·tanh
  against the accumulators.
"""
import math

import torch
from torch import nn


class Objective:
    """The objective of one run: its configuration and its task (an env of tasks.py;
    the task's `readout`, when it has one, overrides the configuration's CE_loss)."""

    def __init__(self, config, task):
        self.kind = task.readout or ('sigmoid' if config['CE_loss'] else 'tanh')
        self.loss = config['loss'] if self.kind == 'sigmoid' else 'mse'
        self.bound = config['bound']
        self.threshold = 0.5 if self.kind == 'sigmoid' else 0.0  # separates the two answers
        self.weighting = next((k for k in ('rand_pen', 'pen_end', 'bal_err') if config[k]), 'uniform')

    def squash(self, logits):
        """The readout: sigmoid, tanh or bound·tanh of the logits."""
        if self.kind == 'sigmoid':
            return torch.sigmoid(logits)
        if self.kind == 'bound_tanh':
            return self.bound * torch.tanh(logits)
        return torch.tanh(logits)

    def targets(self, gt):
        """What the readout is compared with: for BCE 0.5 outside the decision and 0/1 at
        it (the task gives 0 outside, ±1 at it); the task's targets otherwise."""
        return (gt + 1) / 2 if self.kind == 'sigmoid' else gt

    def step_losses(self, logits, gt):
        """Elementwise loss (…, T, n_out) of the readout against the task targets; NaN
        where the logits are NaN (a diverging run), for every loss."""
        if self.loss == 'paper':
            out = torch.sigmoid(logits)
            # BCELoss refuses NaN inputs (an error on the CPU, a device assert on a GPU):
            # such steps get a NaN loss instead, so the run stops with the non-finite-loss
            # error. Finite outputs pass both masked_fills unchanged, gradients included.
            diverged = out.isnan()
            loss = nn.functional.binary_cross_entropy(out.masked_fill(diverged, 0.5), self.targets(gt),
                                                      reduction='none')
            return loss.masked_fill(diverged, float('nan'))
        if self.loss == 'logits':
            return nn.functional.binary_cross_entropy_with_logits(logits, self.targets(gt), reduction='none')
        return (self.squash(logits) - gt) ** 2

    def batch_loss(self, logits, gt, active, weights):
        """The loss of each network of an ensemble (M,): logits (M, B, T, n_out) against
        the targets gt, averaged over the active outputs (mask broadcastable to logits:
        each network's current task family), weighted over the steps by `weights`
        (T,) or (M, B, T) (`step_weights`) and averaged over the trials."""
        if logits.device.type == 'cpu':
            # The paper's BCE costs two scalar logarithms per output on the CPU, most of the
            # loss's time, and a sweep's members leave most of their padded outputs inactive:
            # the step losses are computed on the active outputs alone and the rest are zeros,
            # the same values as the full losses times the mask (on a GPU, finding the active
            # outputs would wait for the device).
            at = active_indices(active, logits.shape)
            picked = self.step_losses(logits.flatten().index_select(0, at), gt.flatten().index_select(0, at))
            losses = logits.new_zeros(logits.numel()).index_copy(0, at, picked).view_as(logits)
        else:
            losses = self.step_losses(logits, gt) * active
        per_step = losses.sum(-1) / active.sum(-1)
        return (per_step * weights).sum(-1).mean(-1)

    def decision_scores(self, logits, gt, active, decision):
        """Per network (M,): accuracy of the answers at the decision steps (`decision`,
        indices) over the active outputs, and the 2×2 confusion matrix (true ×
        predicted, flattened, as fractions)."""
        with torch.no_grad():
            out = self.squash(logits[:, :, decision]) > self.threshold
            true = gt[:, :, decision] > 0
            mask = active.expand_as(out).bool()
            n = mask.sum((1, 2, 3)).float()
            def count(a):
                return (a & mask).sum((1, 2, 3))
            conf = torch.stack([count(~true & ~out), count(~true & out), count(true & ~out), count(true & out)], 1)
            return count(out == true) / n, conf / n[:, None]

    def step_weights(self, decision, generator=None, shape=None):
        """Per-step loss weights (…, T) summing to one per trial, for the decision-step
        mask `decision` (T,). 'uniform': every step equally; 'bal_err': decision and
        integration steps weigh half each; 'pen_end': only the last step; 'rand_pen':
        one random step per trial of `shape`, drawn from `generator` (so each ensemble
        member keeps its own stream)."""
        T = len(decision)
        if self.weighting == 'rand_pen':
            return nn.functional.one_hot(torch.randint(T, shape, generator=generator), T).float()
        if self.weighting == 'pen_end':
            w = torch.zeros(T)
            w[-1] = 1
            return w
        dec = torch.as_tensor(decision)
        if self.weighting == 'bal_err' and dec.any() and not dec.all():
            return torch.where(dec, 0.5 / dec.sum(), 0.5 / (~dec).sum())
        return torch.full((T,), 1 / T)

    def describe(self, config):
        """What a checkpoint records about its readout (the `decoder` entry)."""
        families = config['task'] if isinstance(config['task'], list) else [config['task']]
        return {'activation': self.kind, 'loss': self.loss, 'bound': self.bound, 'families': families}


def active_indices(active, shape):
    """The flat indices of the entries of a tensor of `shape` where the mask `active`
    (broadcastable to it) is non-zero, in no particular order."""
    M, n_out = shape[0], shape[-1]
    if active.shape != (M,) + (1,) * (len(shape) - 2) + (n_out,):
        return active.bool().expand(shape).flatten().nonzero().squeeze(1)
    # the training loop's mask, one value per member and output: its (member, output) pairs
    # spread over the steps, a sixth of the time of nonzero() on the whole expanded mask
    rows = math.prod(shape[1:-1])
    member, output = active.reshape(M, n_out).nonzero().unbind(1)
    starts = member * (rows * n_out) + output
    return (starts[:, None] + torch.arange(0, rows * n_out, n_out, device=active.device)).flatten()
