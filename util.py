"""Shared plumbing used by every script: building tasks and encoders from a run's
configuration, turning task observations into network inputs, training targets and
loss masks, device selection and the one plot style."""
import inspect
import os

import numpy as np
import torch
from torch import nn

import ensemble
import tasks

PERIODS = ('fixation', 'stimulus', 'delay', 'decision')
ENC_HIDDEN, ENC_OUT = 100, 40  # encoder layer sizes (SPEC §3)
REGRESSION_TASKS = ('DenoiseQuads', 'DenoiseQuadsHighDim', 'DenoiseQuadsFreeRT')


def pick_device(device):
    """'auto' means cuda when available, else cpu."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(device)


# ---------------------------------------------------------------------------------
# Tasks

def task_family(config, name=None):
    """Resolve the task class name a configuration trains on: non-zero `corr` /
    `autocorr` select the correlated / autocorrelated variants (SPEC §4)."""
    name = name or config['task']
    if name == 'LinearClassificationCentOut':
        if config.get('corr', 0):
            return 'LinearClassificationCorr'
        if config.get('autocorr', 0):
            return 'LinearClassificationAutocorr'
    return name


def make_env(config, name=None, n_task=None, rule_vec=None, **overrides):
    """Build one task environment with the configuration's timing, noise, latent
    dimensionality and task-specific options. Keywords the task class does not take
    are left out; `overrides` win over the configuration."""
    name = task_family(config, name)
    cls = tasks.TASKS.get(name)
    if cls is None:
        return tasks.make_env(name)  # raises ValueError with a suggestion
    sigma = 0 if config.get('noise_enc') else config['n_sd_in']
    kwargs = dict(dt=config['dt'], timing=dict(config['timing']), sigma=sigma,
                  n_task=n_task if n_task is not None else config['n_task'],
                  n_dim=config['n_dim'], dist=config.get('dist', 'gauss'),
                  corr=config.get('corr', 0), ar_coef=config.get('autocorr', 0),
                  thres=config.get('bound', 5), rule_vec=rule_vec)
    kwargs.update(overrides)
    accepted = inspect.signature(cls.__init__).parameters
    if config['n_dim'] != 2 and 'n_dim' not in accepted:
        raise ValueError(f"task {name!r} is two-dimensional; for n_dim={config['n_dim']} "
                         "use LinearClassificationHighDim (training) or DenoiseQuadsHighDim")
    if kwargs['dist'] != 'gauss' and 'dist' not in accepted:
        raise ValueError(f"dist={kwargs['dist']!r} is only available for LinearClassificationCentOut")
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


def make_envs(config, n_task):
    """The task families of a run, each with its own one-hot rule input when there
    are several (SPEC §2: one family per batch)."""
    names = config['task'] if isinstance(config['task'], list) else [config['task']]
    if len(names) == 1:
        return [make_env(config, names[0], n_task)]
    eye = np.eye(len(names))
    return [make_env(config, name, n_task, rule_vec=eye[i]) for i, name in enumerate(names)]


def training_env(config):
    """The (first) task family a network was trained on, with its rule input."""
    return make_envs(config, config['n_task'])[0]


def decoding_env(config, quads=None, timing=None):
    """The regression task that reads x* out of a trained network, in the input layout
    it was trained with: DenoiseQuads (D = 2), DenoiseQuadsHighDim (D > 2) or
    DenoiseQuadsFreeRT (free-RT networks), with the training noise and the rule input
    of its first task family. `quads` restricts the quadrants / orthants (default all);
    `timing` replaces the training timing."""
    trained = training_env(config)
    cfg = dict(config, task='DenoiseQuads', corr=0, autocorr=0, dist='gauss')
    if timing is not None:
        cfg['timing'] = timing
    if config['task'] == 'LinearClassificationBound':
        name = 'DenoiseQuadsFreeRT'
    else:
        name = 'DenoiseQuadsHighDim' if config['n_dim'] > 2 else 'DenoiseQuads'
    rule_vec = trained.rule_vec if len(trained.rule_vec) else None
    return make_env(cfg, name, rule_vec=rule_vec, **({} if quads is None else {'quad_num': quads}))


def step_masks(timing, dt, trial_num=1):
    """Boolean (T,) masks of the stimulus and decision steps of a sequence of
    `trial_num` trials (periods in the order of SPEC §2)."""
    steps = [int(round(timing[p] / dt)) for p in PERIODS]
    kinds = np.concatenate([np.full(n, i) for i, n in enumerate(steps)])
    kinds = np.tile(kinds, trial_num)
    return kinds == 1, kinds == 3


# ---------------------------------------------------------------------------------
# Encoder: fixed random nonlinear mixing of the latent factors (SPEC §3)

class Square(nn.Module):
    """The quadratic encoder nonlinearity ('Quad')."""

    def forward(self, x):
        return x * x


def build_encoder(n_dim, activ_enc='relu', n_members=1):
    """Linear(D,100) → act → Linear(100,100) → act → Linear(100,40), frozen. Module
    keys 0/2/4 match the paper's Sequential encoder."""
    if activ_enc not in ('relu', 'Quad'):
        raise ValueError(f"activ_enc must be 'relu' or 'Quad', got {activ_enc!r}")
    # in place: the encoder only ever runs without gradients (network_inputs)
    act = (lambda: nn.ReLU(inplace=True)) if activ_enc == 'relu' else Square
    enc = nn.Sequential(ensemble.Linear(n_dim, ENC_HIDDEN, n_members), act(),
                        ensemble.Linear(ENC_HIDDEN, ENC_HIDDEN, n_members), act(),
                        ensemble.Linear(ENC_HIDDEN, ENC_OUT, n_members))
    return enc.requires_grad_(False)


def network_inputs(ob, env, encoder=None, enc_noise=None):
    """Observations (M, B, T, n_obs), or (B, T, n_obs) for one network → network inputs: the D stimulus channels go
    through the encoder at every step; fixation and rule channels pass unmixed
    ([fixation, encoded stimulus, rules]). `enc_noise` (same shape as the encoder
    output) is added after the encoder (`noise_enc=True`)."""
    if encoder is None:
        return ob
    first = 1 if env.fixation else 0
    stim = ob[..., first:first + env.n_dim]
    with torch.no_grad():  # a single network's inputs (B, T, ·) have no member dim
        code = encoder(stim[None])[0] if stim.dim() == 3 else encoder(stim)
    if enc_noise is not None:
        code = code + enc_noise
    return torch.cat([ob[..., :first], code, ob[..., first + env.n_dim:]], dim=-1)


def n_inputs(env, encode):
    """Network input size for an environment, with or without the encoder."""
    n_obs = env.observation_space.shape[0]
    return n_obs - env.n_dim + ENC_OUT if encode else n_obs


# ---------------------------------------------------------------------------------
# Readout, targets and loss masks (SPEC §3-4)

def readout(logits, config):
    """Squash the linear readout: sigmoid (BCE), tanh (MSE), bound·tanh (free RT)."""
    if config['task'] == 'LinearClassificationBound':
        return config['bound'] * torch.tanh(logits)
    return torch.sigmoid(logits) if config['CE_loss'] else torch.tanh(logits)


def loss_weights(config, decision, generator=None, shape=None):
    """Per-step loss weights (…, T) summing to one per trial. Default: every step
    equally; `bal_err`: decision and integration steps weigh half each; `pen_end`:
    only the last step; `rand_pen`: one random step per trial (drawn from
    `generator`, so each ensemble member keeps its own stream)."""
    T = len(decision)
    if config['rand_pen']:
        idx = torch.randint(T, shape, generator=generator)
        return nn.functional.one_hot(idx, T).float()
    if config['pen_end']:
        w = torch.zeros(T)
        w[-1] = 1
    elif config['bal_err'] and decision.any() and not decision.all():
        dec = torch.as_tensor(decision)
        w = torch.where(dec, 0.5 / dec.sum(), 0.5 / (~dec).sum())
    else:
        w = torch.full((T,), 1 / T)
    return w


def classification_targets(gt, config):
    """BCE targets: 0.5 outside decision, 0/1 at it (gt is 0 outside, ±1 at it)."""
    return (gt + 1) / 2 if config['CE_loss'] else gt


def step_losses(logits, gt, config):
    """Elementwise loss (…, T, n_out) of the readout against the task targets.
    BCE either as the paper computes it (`loss='paper'`: torch.nn.BCELoss on the
    float32 sigmoid, log clamped at -100, no gradient where the sigmoid rounds to
    exactly 0 or 1, |logit| above ≈ 16.6) or with logits (`loss='logits'`)."""
    if config['task'] != 'LinearClassificationBound' and config['CE_loss']:
        targets = classification_targets(gt, config)
        if config.get('loss', 'logits') == 'paper':
            return nn.functional.binary_cross_entropy(torch.sigmoid(logits), targets, reduction='none')
        return nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    return (readout(logits, config) - gt) ** 2


def decision_threshold(config):
    """Readout value separating the two answers: 0.5 for sigmoid, 0 otherwise."""
    return 0.5 if config['CE_loss'] and config['task'] != 'LinearClassificationBound' else 0.0


# ---------------------------------------------------------------------------------
# Plot style: one place, used by every script and notebook

def plot_style():
    """Headless, paper-like matplotlib defaults."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    plt.rcParams.update({'figure.dpi': 120, 'savefig.dpi': 200, 'font.size': 9,
                         'axes.spines.top': False, 'axes.spines.right': False,
                         'axes.titlesize': 10, 'legend.frameon': False,
                         'savefig.bbox': 'tight'})
    return plt


def save_figure(fig, path, pdf=True):
    """Save a figure as PNG (and PDF) and close it; returns the PNG path."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    base = os.path.splitext(path)[0]
    fig.savefig(base + '.png')
    if pdf:
        fig.savefig(base + '.pdf')
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base + '.png'


# ---------------------------------------------------------------------------------
# Networks

def build_network(config, n_in, n_out, n_members=1):
    """The network a configuration asks for: 'RNN', 'LSTM' or 'gpt-2' (SPEC §3).
    Every network returns (hidden states, linear readout) from `forward`."""
    import RNN as rnn_module
    import transformer
    net, n_neu = config['network'], config['n_neu']
    if net == 'RNN':
        return rnn_module.RNN(n_in, n_neu, n_out, n_sd=config['n_sd_net'],
                              activation=config['activation'], tau=config['tau'],
                              dt=config['dt'], leaky=config['leaky'], init=config['init'],
                              n_members=n_members)
    if net == 'LSTM':
        return rnn_module.LSTM(n_in, n_neu, n_out, n_members=n_members)
    if net == 'gpt-2':
        return transformer.GPT(n_in, n_out, n_embd=n_neu, n_layer=config['n_layer'],
                               n_head=config['n_head'], n_members=n_members)
    raise ValueError(f"network must be 'RNN', 'LSTM' or 'gpt-2', got {net!r}")


def hidden_states(net, encoder, env, ob, last_only=False, chunk=4096):
    """Hidden states of a single trained network for observations `ob` (B, T, n_obs)
    (numpy or torch): (B, T, N), or (B, N) at the last step with `last_only`.
    Runs without gradients, in chunks so large evaluations fit in memory."""
    device = next(net.parameters()).device
    ob = torch.as_tensor(ob, dtype=torch.float32)
    out = []
    with torch.no_grad():
        for part in ob.split(chunk):
            h, _ = net(network_inputs(part.to(device), env, encoder))
            out.append((h[:, -1] if last_only else h).cpu())
    return torch.cat(out)
