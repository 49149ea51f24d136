"""Train recurrent networks and transformers on multi-task evidence accumulation
(Vafidis, Bhargava & Rangel, ICLR 2025; SPEC §4).

    python train.py                                    # the paper's main network
    python train.py --n_task=[2,3,6,12,24] --runs=5    # the main sweep, one process
    python train.py --network=LSTM --resume=True       # continue an interrupted run

All networks of one call (every n_task value × runs) train together as one
vectorised ensemble; each member keeps its own seed, encoder, data and optimiser.
"""
# ---- hyperparameters (override with --name=value or a config file) ----
task = 'LinearClassificationCentOut'  # task family, or a list of families (one rule input each)
n_task = 24  # tasks per family; a list trains one network per value
n_dim = 2  # latent dimensionality D
n_neu = 64  # hidden units (RNN/LSTM) or embedding size (gpt-2)
network = 'RNN'  # 'RNN', 'LSTM' or 'gpt-2'
leaky = True  # RNN: leaky (True) or non-leaky integration
activation = 'relu'  # RNN nonlinearity: 'relu' or 'tanh'
init = None  # RNN recurrent init: None, 'sparse' or 'ortho'
tau = 100  # RNN time constant (ms)
dt = 100  # time step (ms), for the tasks and the RNN
n_layer = 1  # gpt-2: transformer blocks
n_head = 8  # gpt-2: attention heads
dropout = 0.1  # gpt-2: dropout on embeddings, attention and residuals (training only)
n_sd_in = 2.0  # input noise: the task's sigma (per-step std sigma/sqrt(dt)); a list trains one network per value
n_sd_net = 0.0  # RNN: network noise std
encode = True  # mix the latents through a frozen random MLP encoder
activ_enc = 'relu'  # encoder nonlinearity: 'relu' or 'Quad' (x²)
noise_enc = False  # noise after the encoder (std n_sd_in/20) instead of on the input
enc_hidden = 100  # encoder hidden layer sizes
enc_out = 40  # encoder output features
corr = 0.0  # non-zero: correlated latents (LinearClassificationCorr); a list trains one network per value
autocorr = 0.0  # non-zero: AR(1) input noise with this coefficient (LinearClassificationAutocorr)
dist = 'gauss'  # input noise distribution: 'gauss' or 'gumbel'
boundary_seed = None  # LinearClassificationHighDim's random class boundaries: None draws each network's from its own seed (member_seed; the release drew fresh ones per network), an int the same set for every network (runs saved before this option: 0)
timing = {'fixation': 100, 'stimulus': 2000, 'delay': 0, 'decision': 100}  # period durations (ms)
trial_num = 1  # trials concatenated per sequence
CE_loss = True  # True: BCE with sigmoid readout; False: MSE with tanh readout
loss = 'paper'  # BCE as the paper computes it, on float32 sigmoid outputs ('paper'), or BCE with logits ('logits')
bal_err = False  # loss mask: decision and integration steps weigh equally
pen_end = False  # loss mask: only the last step
rand_pen = False  # loss mask: one random step per trial
bound = 5.0  # DDM bound of the free reaction-time task (LinearClassificationBound)
batch_sz = 16  # trials per batch
n_batch = None  # training batches; None: 1e5 (2e4 for gpt-2); 0: untrained networks, saved as initialised (the baseline of every OOD figure)
lr = 1e-3  # Adam learning rate (no weight decay)
runs = 1  # independently seeded networks per n_task value
run = 0  # index of the first run (members get run ... run+runs-1)
seed = 0  # base seed; a network's seed derives from (seed, n_task, run) only
device = 'auto'  # 'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...
n_threads = 1  # CPU threads for torch (1 is fastest when processes share the machine; more help a large ensemble on a quiet one)
data_threads = 0  # threads drawing the members' training data in parallel (0: none; helps a large ensemble on a GPU)
cuda_graph = False  # on a GPU: record one training batch as a CUDA graph and replay it (less launch overhead; not yet run on a GPU)
out_dir = 'trained_networks'  # where the run folders are written
resume = False  # continue from the checkpoints in the run folders
ckpt_every = 2000  # batches between checkpoints
# ------------------------------------------------------------------------
import os

import checks
import configurator
from runs import DEFAULT_BATCHES, RunLock, finished, run_name, train_command  # (train.py has a `runs` hyperparameter)

_NETWORKS = ('RNN', 'LSTM', 'gpt-2')
_DEFAULTS = configurator.script_defaults(__file__)  # from the source: the command line has already set globals()
_BLOCK = 16  # batches whose data is drawn and moved to the device at once
_CHUNK = 64  # batches each member's data source draws at once (tasks.BatchSource)
_MAX_SEED = 2 ** 63 - 1  # torch.manual_seed takes a signed 64-bit seed
_RUNTIME_BYTES = 400 * 2 ** 20  # what a training process holds before its networks (torch, numpy, the tasks)
# data settings that may be lists, like n_task: one network per combination of values (the
# networks differ only in their data, so they still train as one ensemble)
_VARIANTS = ('n_sd_in', 'corr')


def listed(value):
    return value if isinstance(value, list) else [value]


def resolved(config):
    """The configuration with the budget it trains for: n_batch=None is the network
    type's default (DEFAULT_BATCHES)."""
    if config['n_batch'] is None:
        config = {**config, 'n_batch': DEFAULT_BATCHES[config['network']]}
    return config


def check_config(config):
    """Raise ValueError for impossible hyperparameters (the checks that need no task
    or model code, so they answer before the slow imports); returns the n_task values."""
    n_tasks = checks.positive_ints('n_task', config['n_task'] if isinstance(config['n_task'], list)
                                   else [config['n_task']])
    checks.one_of('network', config['network'], _NETWORKS)
    checks.one_of('activation', config['activation'], ('relu', 'tanh'))
    checks.one_of('init', config['init'], (None, 'sparse', 'ortho'))
    checks.one_of('activ_enc', config['activ_enc'], ('relu', 'Quad'))
    checks.one_of('loss', config['loss'], ('paper', 'logits'))
    checks.one_of('dist', config['dist'], ('gauss', 'gumbel'))
    for name in ('n_dim', 'n_neu', 'n_layer', 'n_head', 'enc_hidden', 'enc_out', 'trial_num',
                 'batch_sz', 'runs', 'ckpt_every', 'n_threads'):
        checks.positive_int(name, config[name])
    checks.non_negative_int('data_threads', config['data_threads'])
    if config['n_batch'] is not None:  # 0 is a budget like any other: the networks as initialised
        checks.non_negative_int('n_batch', config['n_batch'])
    checks.non_negative_int('run', config['run'])
    if config['boundary_seed'] is not None:
        checks.non_negative_int('boundary_seed', config['boundary_seed'])
    checks.non_negative_int('seed', config['seed'])
    if config['seed'] > _MAX_SEED:
        checks.fail('seed', config['seed'], f'a non-negative integer up to 2**63 - 1 = {_MAX_SEED}')
    for name in ('tau', 'dt', 'lr', 'bound'):
        checks.positive(name, config[name])
    for value in listed(config['n_sd_in']):
        checks.non_negative('n_sd_in', value)
    for value in listed(config['corr']):
        checks.open_interval('corr', value)
    checks.non_negative('n_sd_net', config['n_sd_net'])
    if not 0 <= config['dropout'] < 1:  # the transformer checks it too, after the slow imports
        checks.fail('dropout', config['dropout'], 'a number in [0, 1)')
    if sum(bool(config[k]) for k in ('bal_err', 'pen_end', 'rand_pen')) > 1:
        checks.fail('pen_end', config['pen_end'], 'at most one of bal_err, pen_end, rand_pen set to True')
    if any(listed(config['corr'])) and config['autocorr']:
        checks.fail('corr', config['corr'], 'corr and autocorr not both non-zero')
    if config['network'] == 'gpt-2' and config['n_neu'] % config['n_head']:
        checks.fail('n_head', config['n_head'], f"a divisor of n_neu={config['n_neu']}")
    if not (config['device'] in ('auto', 'cpu') or str(config['device']).startswith('cuda')):
        checks.fail('device', config['device'], "'auto', 'cpu' or 'cuda[:i]'")
    checks.folder('out_dir', config['out_dir'])
    if not checks.fits_file_system(config['out_dir']):  # refused before makedirs fails half-way
        raise ValueError(f'out_dir={shown(config["out_dir"])} is too long for the file system '
                         "(a name in it, or the whole path, passes the file system's limit)")
    check_memory(config, checks.available_memory(), 'this machine', _RUNTIME_BYTES)
    return n_tasks


def shown(path):
    """A path as an error message shows it: long ones cut."""
    return repr(path) if len(path) <= 100 else f'{path[:60]!r}... ({len(path)} characters)'


def memory_needed(config):
    """Bytes a training call needs at least, from its hyperparameters alone (torch-free, so
    it answers before anything is allocated): every network's weights, gradients and
    Adam moments, its frozen encoder, one batch's activations kept for the backward
    pass, and the batches of data drawn ahead. None of it grows with n_batch."""
    timing = config['timing']
    if not isinstance(timing, dict) or not all(type(v) in (int, float) and v >= 0 for v in timing.values()):
        return 0  # the task checks the timing and says what is wrong with it
    n_tasks, families = listed(config['n_task']), len(listed(config['task']))
    members = len(n_tasks) * config['runs'] * len(listed(config['n_sd_in'])) * len(listed(config['corr']))
    T = config['trial_num'] * max(1, int(sum(timing.values()) // config['dt']))  # steps per sequence
    B, N, D, n_out = config['batch_sz'], config['n_neu'], config['n_dim'], families * max(n_tasks)
    n_obs = 1 + D + (families if families > 1 else 0)  # fixation, stimulus, rule inputs
    H, E = config['enc_hidden'], config['enc_out']
    n_in = n_obs - D + E if config['encode'] else n_obs
    encoder = D * H + H * H + H * E + 2 * H + E if config['encode'] else 0
    # parameters, and floats per trial and step kept for the backward pass
    if config['network'] == 'RNN':
        params, kept = n_in * N + N * N + N * n_out + 2 * N + n_out, 8 * N
    elif config['network'] == 'LSTM':
        params, kept = 4 * N * (n_in + N + 2) + N * n_out + n_out, 20 * N
    else:
        L = config['n_layer']
        params = n_in * N + T * N + L * 12 * N * N + N * n_out
        kept = L * (34 * N + 4 * config['n_head'] * T) + 2 * N
    floats = (4 * params + encoder  # weights, gradients, Adam's two moments; the frozen encoder
              + B * T * (kept + 2 * H + E + 6 * n_out)  # one batch: activations, readout, loss terms
              + (_BLOCK + _CHUNK) * B * (T * n_obs + config['trial_num'] * n_out))  # data drawn ahead
    return 4 * members * floats  # float32


# the hyperparameters that size a training call, one of which is named when it does not fit
_SIZES = ('n_neu', 'runs', 'n_task', 'batch_sz', 'n_sd_in', 'corr', 'task', 'trial_num', 'timing', 'dt',
          'enc_hidden', 'enc_out', 'n_dim', 'n_layer', 'n_head')


def check_memory(config, available, where, base=0):
    """Refuse a training call that needs more than `available` bytes (None: unknown) on
    `where`, `base` bytes besides its networks, naming the hyperparameter whose default
    value would shrink it the most."""
    need = base + memory_needed(config)
    if available is None or need <= available:
        return
    sizes = f'needs about {need / 2**30:.3g} GiB of memory and {where} has {available / 2**30:.3g} GiB available'
    shrunk = {k: memory_needed({**config, k: _DEFAULTS[k]}) for k in _SIZES}
    name = min(shrunk, key=shrunk.get)
    if shrunk[name] < need - base:
        raise ValueError(f'{name}={config[name]!r} is too large: training as asked {sizes}; lower {name}')
    raise ValueError(f'training as asked {sizes}: lower runs, n_task or n_neu')


if __name__ == '__main__':  # --help and configuration errors answer here, before the slow imports below
    _config = configurator.configure(globals(), lists=('task', 'n_task') + _VARIANTS, doc=__doc__,
                                     check=check_config, resolve=resolved)

import itertools
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import checkpoints
import ensemble
import networks
import tasks
import util
from objective import Objective

_N_RECORD = 100  # points of the loss / accuracy / confusion history
_WARMUP = 3  # eager batches before a CUDA graph is recorded (cuBLAS and the allocator settle)


def defaults():
    """The hyperparameters at the top of this file with their default values."""
    return dict(_DEFAULTS)


def variants(config):
    """The configuration of each combination of the _VARIANTS values."""
    values = itertools.product(*(listed(config[name]) for name in _VARIANTS))
    return [{**config, **dict(zip(_VARIANTS, combination))} for combination in values]


def check_tasks(config, n_tasks):
    """The checks that need the task classes: names, regression vs classification,
    and each task's own keywords (timing, n_dim, ...)."""
    names = config['task'] if isinstance(config['task'], list) else [config['task']]
    for name in names:
        if name not in tasks.TASKS:
            tasks.make_env(name)  # ValueError with a close-match suggestion
        if name in tasks.REGRESSION_TASKS and config['CE_loss']:
            raise ValueError(f"task {name!r} is a regression task: use --CE_loss=False")
        if name == tasks.FREE_RT_TASK and len(names) > 1:
            raise ValueError(f'{tasks.FREE_RT_TASK} cannot be mixed with other task families')
    for variant in variants(config):
        for k in n_tasks:
            # the task classes check their own keywords (any member seed: boundaries are not checked)
            tasks.training_envs(dict(variant, member_seed=0), k)


def member_seeds(base_seed, n_task, run):
    """Seeds of one network for (init, data, noise), derived from (seed, n_task, run) only."""
    children = np.random.SeedSequence([base_seed, n_task, run]).spawn(3)
    return [int(c.generate_state(1)[0]) for c in children]


# ---------------------------------------------------------------------------------
# The ensemble

class Member:
    """One network of the ensemble: its configuration, folder, data and generators."""

    def __init__(self, config, name, n_task, run):
        self.n_task, self.run, self.name = n_task, run, name
        self.init_seed, data_seed, noise_seed = member_seeds(config['seed'], n_task, run)
        self.folder = os.path.join(config['out_dir'], self.name)
        self.config = {**config, 'n_task': n_task, 'run': run, 'member_seed': self.init_seed,
                       'name': self.name}
        self.envs = tasks.training_envs(self.config, n_task)  # with its member_seed: its own boundaries
        self.offsets = np.cumsum([0] + [env.n_out for env in self.envs]).tolist()
        self.n_out = self.offsets[-1]
        self.source = tasks.BatchSource(self.envs, config['batch_sz'], data_seed,
                                        trial_num=config['trial_num'])
        self.noise = torch.Generator().manual_seed(noise_seed)
        self.history = {'loss': [], 'acc': [], 'conf': []}

    def checkpoint_path(self):
        return os.path.join(self.folder, checkpoints.CHECKPOINT)


def build_ensemble(config, members, n_in, device):
    """Network and encoder with one member per network. Each member is initialised
    alone under its own seed and copied in, so its weights do not depend on the
    other members; readouts of members with fewer outputs are zero-padded."""
    n_out = max(m.n_out for m in members)
    net = networks.build_network(config, n_in, n_out, n_members=len(members))
    encoder = networks.build_encoder(config, len(members))
    for i, m in enumerate(members):
        torch.manual_seed(m.init_seed)
        if encoder is not None:
            single = networks.build_encoder(config)
            ensemble.load_member_state_dict(encoder, i, ensemble.member_state_dict(single, 0))
        single = networks.build_network(config, n_in, m.n_out)
        ensemble.load_member_state_dict(net, i, pad_readout(ensemble.member_state_dict(single, 0), n_out))
    return net.to(device), (encoder.to(device) if encoder is not None else None)


def pad_readout(state, n_out):
    """Zero-pad a member's readout (`rec_to_out`) to the ensemble's output count."""
    state = dict(state)
    for key in ('rec_to_out.weight', 'rec_to_out.bias'):
        v = state[key]
        pad = torch.zeros((n_out - v.shape[0],) + tuple(v.shape[1:]), dtype=v.dtype)
        state[key] = torch.cat([v, pad])
    return state


def member_state(net, i, n_out):
    """A member's own state dict, readout cut back to its own outputs."""
    state = ensemble.member_state_dict(net, i)
    for key in ('rec_to_out.weight', 'rec_to_out.bias'):
        state[key] = state[key][:n_out].clone()
    return state


# ---------------------------------------------------------------------------------
# Checkpoints

def save_member(i, m, net, encoder, opt, done, accum, readout, wall):
    """Write member i's net.pth (atomically) after `done` batches: weights, encoder,
    histories, config and everything resuming needs. The folder's config.json is
    written with its first checkpoint, so a run that fails before it leaves nothing."""
    adam = {}
    for name, p in net.named_parameters():
        state = opt.state.get(p)
        if state:
            cut = slice(None, m.n_out) if name.startswith('rec_to_out') else slice(None)
            adam[name] = {'exp_avg': state['exp_avg'][i][cut].cpu().clone(),
                          'exp_avg_sq': state['exp_avg_sq'][i][cut].cpu().clone()}
    rng = {'torch_rng': torch.get_rng_state()}
    if torch.cuda.is_available():  # dropout on the GPU draws from its generator
        rng['cuda_rng'] = torch.cuda.get_rng_state()
    ckpt = {'state_dict': {k: v.cpu() for k, v in member_state(net, i, m.n_out).items()},
            'encoder': ({k: v.cpu() for k, v in ensemble.member_state_dict(encoder, i).items()}
                        if encoder is not None else None),
            'decoder': readout,
            'loss_hist': torch.tensor(m.history['loss']),
            'acc_hist': torch.tensor(m.history['acc']),
            'conf_matr_hist': torch.tensor(m.history['conf']).reshape(-1, 2, 2),
            'config': m.config,
            'resume': {'batch': done, 'adam': adam, 'data': m.source.state_dict(),
                       'noise_rng': m.noise.get_state(), 'wall_seconds': wall, **rng,
                       'accum': {k: v[i].cpu().clone() for k, v in accum.items()}}}
    if not os.path.exists(os.path.join(m.folder, checkpoints.CONFIG)):
        checkpoints.save_json(m.config, os.path.join(m.folder, checkpoints.CONFIG))
    checkpoints.save_torch(ckpt, m.checkpoint_path())


def restore(members, ckpts, net, encoder, opt, accum):
    """Load every member's checkpoint into the ensemble; returns (the batch to resume
    at, the wall seconds trained so far)."""
    steps = {m.name: c['resume']['batch'] for m, c in zip(members, ckpts)}
    n_out = net.rec_to_out.out_features
    params = dict(net.named_parameters())
    for i, (m, c) in enumerate(zip(members, ckpts)):
        ensemble.load_member_state_dict(net, i, pad_readout(c['state_dict'], n_out))
        if encoder is not None:
            ensemble.load_member_state_dict(encoder, i, c['encoder'])
        m.history = {'loss': c['loss_hist'].tolist(), 'acc': c['acc_hist'].tolist(),
                     'conf': c['conf_matr_hist'].reshape(-1, 4).tolist()}
        m.source.load_state_dict(c['resume']['data'])
        m.noise.set_state(c['resume']['noise_rng'])
        for k, v in c['resume']['accum'].items():
            accum[k][i] = v
        for name, state in c['resume']['adam'].items():
            p = params[name]
            if p not in opt.state:
                opt.state[p] = {'step': torch.tensor(float(steps[m.name]), device=p.device),
                                'exp_avg': torch.zeros_like(p), 'exp_avg_sq': torch.zeros_like(p)}
            for key in ('exp_avg', 'exp_avg_sq'):
                opt.state[p][key][i, :len(state[key])] = state[key]
    first = ckpts[0]['resume']
    torch.set_rng_state(first['torch_rng'])
    if 'cuda_rng' in first and torch.cuda.is_available():
        torch.cuda.set_rng_state(first['cuda_rng'])
    return first['batch'], first.get('wall_seconds', 0.0)


class Stop:
    """Turns SIGINT (Ctrl-C) and SIGTERM (what Slurm sends before killing a job) into a
    flag the training loop checks after each batch, so it stops at a consistent state."""

    def __init__(self):
        self.signal = None
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signal handlers live there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self.catch)
        return self

    def catch(self, signum, frame):
        if self.signal:  # a second one: stop now
            raise KeyboardInterrupt(signal.Signals(signum).name)
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------
# Training

def next_block(members, n, n_out, device, pool=None):
    """The members' next n batches, each from its own data stream: observations
    (n, M, B, T, n_obs), targets (n, M, B, K, n_out) in the slice of each member's
    current task family (K = trial_num while compact, see tasks.BatchSource.dense),
    and the mask of those active outputs (n, M, 1, 1, n_out). Each member's source
    state before the block is kept (to rewind on interrupt)."""
    def draw(m):
        m.block_state = m.source.state_dict()
        return m.source.next_many(n)

    # each member's stream is its own, so drawing them in parallel changes nothing
    blocks = list(pool.map(draw, members)) if pool else [draw(m) for m in members]
    obs = torch.stack([ob for ob, _, _ in blocks], 1)
    gts = torch.stack([nn.functional.pad(gt, (0, n_out - gt.shape[-1])) for _, gt, _ in blocks], 1)
    actives = torch.stack([nn.functional.pad(a, (0, n_out - a.shape[-1])) for _, _, a in blocks], 1)
    return obs.to(device), gts.to(device), actives[:, :, None, None].to(device)


class Batch:
    """The work of one training batch, all on the device: forward, loss, backward,
    Adam, and the running sums updated in place. With `graph` (a GPU), the first
    _WARMUP batches run eagerly on a side stream, then one batch is recorded as a
    CUDA graph and replayed with each batch's inputs copied into its buffers."""

    def __init__(self, work, opt, graph):
        self.work, self.opt, self.use_graph = work, opt, graph
        self.graph, self.inputs, self.calls = None, None, 0

    def __call__(self, **inputs):
        self.calls += 1
        if not self.use_graph:
            self.opt.zero_grad(set_to_none=True)
            return self.work(**inputs)
        if self.calls <= _WARMUP:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.opt.zero_grad(set_to_none=True)
                self.work(**inputs)
            torch.cuda.current_stream().wait_stream(side)
            return
        if self.graph is None:
            self.record(inputs)
        for name, value in inputs.items():
            if value is not None:
                self.inputs[name].copy_(value)
        self.graph.replay()

    def record(self, inputs):
        """Record the batch once (recording runs nothing); fall back to eager on failure."""
        self.inputs = {k: (v.clone() if v is not None else None) for k, v in inputs.items()}
        self.opt.zero_grad(set_to_none=True)  # the gradients are allocated inside the graph
        try:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.work(**self.inputs)
        except Exception as e:  # noqa: BLE001 (any failure: train on, without the graph)
            print(f'warning: CUDA graph recording failed ({type(e).__name__}: {e}); training eagerly',
                  file=sys.stderr)
            torch.cuda.synchronize()
            self.use_graph, self.graph = False, None


def member_noise(members, config, shape, stim_steps, objective, decision):
    """What each member draws from its own noise generator this batch: network noise
    (RNN), noise after the encoder (`noise_enc`) and the `rand_pen` loss steps; None
    where not used."""
    def draw(size):
        return torch.stack([torch.randn(shape + (size,), generator=m.noise) for m in members])
    noise = draw(config['n_neu']) if config['n_sd_net'] and config['network'] == 'RNN' else None
    enc_noise = None
    if config['noise_enc'] and config['encode']:
        std = torch.tensor([m.config['n_sd_in'] * networks.ENC_NOISE_SCALE for m in members])[:, None, None, None]
        enc_noise = draw(config['enc_out']) * std * torch.as_tensor(stim_steps)[:, None]
    w = torch.stack([objective.step_weights(decision, m.noise, shape[:1]) for m in members]) \
        if objective.weighting == 'rand_pen' else None
    return noise, enc_noise, w


def setup(config):
    """Check the configuration, name the networks, lock their folders and sort out
    what exists: returns (config with n_batch resolved, members to train, folders of
    every member, their checkpoints when resuming, locks)."""
    config = dict(config)
    n_tasks = check_config(config)
    check_tasks(config, n_tasks)
    device = util.pick_device(config['device'])  # a missing GPU is an error before any folder is made
    if device.type == 'cuda':  # check_config has checked the host's memory
        check_memory(config, torch.cuda.mem_get_info(device)[0], str(device))
    config = resolved(config)
    # the default budget stays out of folder names, also when given explicitly (--n_batch=1e5)
    naming = dict(_DEFAULTS, n_batch=DEFAULT_BATCHES[config['network']])
    config.update(util.provenance())
    members = [Member(variant, run_name(variant, naming, k, r), k, r) for variant in variants(config)
               for k in n_tasks for r in range(config['run'], config['run'] + config['runs'])]
    folders = [m.folder for m in members]
    for m in members:
        if not checks.fits_file_system(m.checkpoint_path() + '.tmp'):  # the longest file it writes
            raise ValueError(f'out_dir={shown(config["out_dir"])} is too long for the file system '
                             f'with its run folder {m.name!r} in it; use a shorter out_dir')
        exists = os.path.exists(m.checkpoint_path())
        if exists and not config['resume']:
            raise FileExistsError(f'{m.folder} already holds a trained network: use --resume=True '
                                  'to continue it, or another out_dir')
        if config['resume'] and not exists:
            raise FileNotFoundError(f'--resume=True but {m.checkpoint_path()} does not exist')
    todo = [m for m in members if not (config['resume'] and finished(m.folder, config['n_batch']))]
    for m in set(members) - set(todo):
        print(f'{m.folder} is complete ({config["n_batch"]} batches): nothing to do')
    locks = []
    try:
        for m in todo:
            locks.append(RunLock(m.folder))
        ckpts = [checkpoints.load_checkpoint(m.checkpoint_path()) for m in todo] if config['resume'] else []
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return config, todo, folders, ckpts, locks


def train(config):
    """Train every network the configuration asks for (a dict of every hyperparameter
    above); returns the run folders. Ctrl-C or SIGTERM saves a checkpoint of every
    network, prints the command that continues and raises KeyboardInterrupt. Folders
    it made and left empty (a run that failed before its first checkpoint) are removed."""
    made = missing_folders(checks.folder('out_dir', config['out_dir']))
    try:
        config, members, folders, ckpts, locks = setup(config)
        try:
            with Stop() as stop:
                # networks resumed from different batches train as one ensemble per batch
                groups = {}
                for m, c in zip(members, ckpts or [None] * len(members)):
                    groups.setdefault(c['resume']['batch'] if c else 0, []).append((m, c))
                for group in groups.values():
                    run_ensemble(config, [m for m, _ in group], [c for _, c in group if c], stop)
        finally:
            for lock in locks:
                lock.release()
    finally:
        remove_empty(made)
    return folders


def missing_folders(path):
    """The folders of `path` that do not exist yet, deepest first."""
    missing, path = [], os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def remove_empty(folders):
    """Remove those of `folders` (deepest first) that exist and are empty."""
    for folder in folders:
        if os.path.isdir(folder):
            if os.listdir(folder):
                return  # the folders above hold this one
            os.rmdir(folder)


def run_ensemble(config, members, ckpts, stop):
    """The training loop of one vectorised ensemble."""
    n_batch, device = config['n_batch'], util.pick_device(config['device'])
    util.set_threads(config['n_threads'])
    util.keep_freed_memory()
    env = members[0].envs[0]
    net, encoder = build_ensemble(config, members, networks.n_inputs(env, config), device)
    graph = config['cuda_graph'] and device.type == 'cuda'
    opt = torch.optim.Adam(net.parameters(), lr=config['lr'], fused=True, capturable=graph)
    M, n_out = len(members), net.rec_to_out.out_features
    objective = Objective(config, env)
    stim_steps = env.period_mask('stimulus', config['trial_num'])
    decision = env.period_mask('decision', config['trial_num'])
    decision_t = torch.as_tensor(np.flatnonzero(decision), device=device)  # indices: a mask would sync the GPU
    weights = objective.step_weights(decision).to(device) if objective.weighting != 'rand_pen' else None
    # running sums since the last record, and the first non-finite batch of each member, on
    # the device: the loop never waits for the device except at records and checkpoints
    accum = {k: torch.zeros(M, *s, device=device) for k, s in (('loss', ()), ('acc', ()), ('conf', (4,)), ('n', ()))}
    bad_batch = torch.full((M,), -1, device=device)
    torch.manual_seed(config['seed'])  # dropout (gpt-2) draws from the global generator
    start, wall0 = restore(members, ckpts, net, encoder, opt, accum) if ckpts else (0, 0.0)
    records = set(np.linspace(0, n_batch, min(_N_RECORD, n_batch) + 1).round().astype(int)[1:].tolist())

    def next_stop(step):
        """The next checkpoint or record after `step`: blocks end there, so each source's
        state there is exact (computed, not listed: n_batch may be huge)."""
        checkpoint = (step // config['ckpt_every'] + 1) * config['ckpt_every']
        return min([checkpoint, n_batch] + [r for r in records if r > step])

    readout = objective.describe(config)
    source = members[0].source  # spreads compact targets over the steps, the same for every member
    pool = ThreadPoolExecutor(config['data_threads']) if config['data_threads'] else None

    def work(ob, gt, active, weights, noise, enc_noise, index):
        _, logits = net(networks.network_inputs(ob, env, encoder, enc_noise), noise)
        gt = source.dense(gt)
        loss = objective.batch_loss(logits, gt, active, weights)  # (M,)
        loss.sum().backward()
        opt.step()
        acc, conf = objective.decision_scores(logits, gt, active, decision_t)
        bad_batch.copy_(torch.where((bad_batch < 0) & ~torch.isfinite(loss), index, bad_batch))
        accum['loss'] += loss.detach()
        accum['acc'] += acc
        accum['conf'] += conf
        accum['n'] += 1

    batch = Batch(work, opt, graph)
    net.train()
    t0, bar = time.time(), tqdm(total=n_batch, initial=start, desc=f'{M} network{"s" * (M > 1)}',
                                dynamic_ncols=True, mininterval=1)

    def save_all(done):
        for i, m in enumerate(members):
            save_member(i, m, net, encoder, opt, done, accum, readout, wall0 + time.time() - t0)

    def check_finite(done):
        if (bad_batch >= 0).any():
            first = int(bad_batch[bad_batch >= 0].min())
            bad = [members[i] for i in torch.nonzero(bad_batch >= 0).flatten().tolist()]
            kept = ('the last good checkpoints (every {} batches) are kept'.format(config['ckpt_every'])
                    if all(os.path.exists(m.checkpoint_path()) for m in bad) else 'nothing was saved')
            raise FloatingPointError(f'non-finite loss at batch {first} for {[m.name for m in bad]} '
                                     f'(diverged: try a smaller lr); {kept}')

    def interrupt(j):
        """Save every network after batch j of the current block and stop."""
        check_finite(step)
        for m in members:  # rewind each data stream to just after that batch
            m.source.load_state_dict(m.block_state)
            m.source.next_many(j + 1)
        save_all(step)
        bar.close()
        print(f'\n{stop.signal}: saved every network at batch {step}. Continue with:\n'
              f'  {train_command(config, resume=True)}', file=sys.stderr)
        raise KeyboardInterrupt(f'stopped by {stop.signal} at batch {step}')

    step = start
    while step < n_batch:
        n = min(_BLOCK, next_stop(step) - step)
        block_ob, block_gt, block_active = next_block(members, n, n_out, device, pool)
        for j in range(n):
            noise, enc_noise, w = member_noise(members, config, block_ob.shape[2:4], stim_steps, objective, decision)
            batch(ob=block_ob[j], gt=block_gt[j], active=block_active[j],
                  weights=weights if weights is not None else w.to(device), noise=to(noise, device),
                  enc_noise=to(enc_noise, device), index=torch.full((), step, device=device))
            step += 1
            bar.update()
            if stop.signal and j < n - 1:
                interrupt(j)
        if step in records:
            check_finite(step)
            count = accum['n']  # every member's means in one op each: a record costs no op per member
            means = zip((accum['loss'] / count).tolist(), (accum['acc'] / count).tolist(),
                        (accum['conf'] / count[:, None]).tolist())
            for m, (loss, acc, conf) in zip(members, means):
                m.history['loss'].append(loss)
                m.history['acc'].append(acc)
                m.history['conf'].append(conf)
            for v in accum.values():
                v.zero_()
            bar.set_postfix(loss=f"{np.mean([m.history['loss'][-1] for m in members]):.4f}",
                            acc=f"{np.mean([m.history['acc'][-1] for m in members]):.3f}", refresh=False)
        if step % config['ckpt_every'] == 0 or step == n_batch:
            check_finite(step)
            save_all(step)
        if stop.signal and step < n_batch:
            interrupt(n - 1)
    if n_batch == 0:  # untrained: the initialisation is the finished run (config, net.pth, metrics.json)
        save_all(0)
    bar.close()
    if pool:
        pool.shutdown()

    wall = time.time() - t0
    rate = (n_batch - start) / wall if wall > 0 else float('nan')
    for m in members:
        checkpoints.save_json({'final_loss': m.history['loss'][-1] if m.history['loss'] else None,
                               'final_accuracy': m.history['acc'][-1] if m.history['acc'] else None,
                               'batches_done': n_batch, 'wall_seconds': wall0 + wall,
                               'batches_per_second': rate, 'ensemble_size': M,
                               'network_batches_per_second': rate * M},
                              os.path.join(m.folder, checkpoints.METRICS))
    print(f'trained {M} network(s), {n_batch - start} batches in {wall:.0f} s '
          f'({rate:.0f} batches/s, {rate * M:.0f} network-batches/s) -> {config["out_dir"]}/')


def to(x, device):
    return None if x is None else x.to(device)


if __name__ == '__main__':
    configurator.run(train, _config)
