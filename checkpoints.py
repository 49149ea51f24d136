"""Trained networks on disk: atomic writes, safe loading (ours and the paper's
published checkpoints), readable run folders and finding runs by their config.

A run folder `out_dir/<name>/` holds `config.json`, `net.pth` and `metrics.json`
(SPEC §4). `net.pth` loads with `torch.load(..., weights_only=True)`."""
import glob
import json
import os
import re
import sys
import tempfile

import numpy as np
import torch

import checks
import ensemble
import networks
import tasks
from configurator import script_defaults

CHECKPOINT = 'net.pth'
CONFIG = 'config.json'
METRICS = 'metrics.json'
TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'train.py')
# what runs saved before these hyperparameters existed were trained with
EARLIER_DEFAULTS = {'loss': 'logits', 'dropout': 0.1, 'enc_hidden': 100, 'enc_out': 40}


# ---------------------------------------------------------------------------------
# Atomic writes: a crash mid-write never leaves a truncated file behind

def _atomic(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_torch(obj, path):
    """torch.save through a temporary file and a rename."""
    _atomic(path, lambda f: torch.save(obj, f))


def save_json(obj, path):
    """JSON through a temporary file and a rename."""
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=2, default=_jsonable).encode()))


def _jsonable(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return x.tolist()
    raise TypeError(f'{type(x).__name__} is not JSON serialisable')


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'{path} does not exist') from None
    except json.JSONDecodeError as e:
        raise ValueError(f'{path} is corrupt (not valid JSON: {e})') from None


# ---------------------------------------------------------------------------------
# Safe loading

def _numpy_globals():
    """The numpy pickling helpers the paper's legacy checkpoints reference, under
    both their numpy 1 and numpy 2 module names. Nothing else may be unpickled."""
    core = np._core.multiarray
    allowed = [np.ndarray, np.dtype]
    allowed += [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed += [(core._reconstruct, f'{mod}._reconstruct'), (core.scalar, f'{mod}.scalar')]
    return allowed


def load_checkpoint(path):
    """Load a checkpoint dict with `weights_only=True` (numpy arrays allowed, for the
    paper's files). Missing or corrupt files give a clear error."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise ValueError(f'checkpoint {path} is corrupt or not a safe checkpoint: '
                         f'{str(e).splitlines()[0]}') from None
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt:
        raise ValueError(f'checkpoint {path} has no state_dict: not a trained network')
    return ckpt


# ---------------------------------------------------------------------------------
# Run folders

NAME_SKIP = ('n_task', 'runs', 'run', 'out_dir', 'device', 'n_threads', 'resume', 'ckpt_every')


def run_name(config, defaults, n_task, run):
    """Readable folder name: the hyperparameters that differ from the defaults,
    then nTask<k> and run<r>, e.g. `network-LSTM_nTask24_run0`."""
    parts = []
    for key, value in config.items():
        if key in NAME_SKIP or key not in defaults or value == defaults[key]:
            continue
        if isinstance(value, dict):
            value = '-'.join(str(v) for v in value.values())
        elif isinstance(value, (list, tuple)):
            value = '-'.join(str(v) for v in value)
        parts.append(f'{key}-{value}')
    parts += [f'nTask{n_task}', f'run{run}']
    return re.sub(r'[^A-Za-z0-9._+-]', '', '_'.join(parts))


def find_runs(root='trained_networks', **criteria):
    """Run folders under `root` (and the paper's published `.pth` files lying in it)
    whose config matches every criterion, sorted by (n_task, run, name). A value may
    be a list of accepted values, e.g. `find_runs(root, network='RNN', n_task=[2, 24])`."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f'runs_dir {root!r} does not exist')
    found = []
    for path in glob.glob(os.path.join(root, '*', CONFIG)) + glob.glob(os.path.join(root, '*.pth')):
        if path.endswith(CONFIG):
            config, where = load_config(os.path.dirname(path)), os.path.dirname(path)
        else:
            config, where = legacy_config(path, load_checkpoint(path)), path
        if all(_matches(config.get(k, _MISSING), v) for k, v in criteria.items()):
            found.append((config['n_task'], config['run'], where))
    return [where for _, _, where in sorted(found)]


def find_sweep(root, select, n_tasks, n_runs):
    """{n_task: the first n_runs run folders matching `select`} for every task count;
    a task count without any network is an error naming it, one with fewer a warning."""
    folders = {k: find_runs(root, **{**select, 'n_task': k})[:n_runs] for k in n_tasks}
    missing = [k for k, f in folders.items() if not f]
    if missing:
        raise FileNotFoundError(f"no trained networks in {root!r} match {select} with n_task in "
                                f"{missing}; train them first (python train.py --n_task={missing})")
    for k, found in folders.items():
        if len(found) < n_runs:
            print(f"warning: only {len(found)} of n_runs={n_runs} networks found for n_task={k}; "
                  "the rest stay NaN", file=sys.stderr)
    return folders


_MISSING = object()


def _matches(value, wanted):
    if isinstance(wanted, (list, tuple)) and not isinstance(value, (list, tuple)):
        return value in wanted
    return value == wanted


# ---------------------------------------------------------------------------------
# One loader for every trained network

def load_config(folder):
    """A run folder's config.json, completed with what older runs were trained with
    for hyperparameters added since (e.g. loss='logits')."""
    return {**EARLIER_DEFAULTS, **load_json(os.path.join(folder, CONFIG))}


def load_network(path, device='cpu', noise_free=False):
    """Rebuild a trained network (one member), its frozen encoder and its config
    from a run folder of ours or from one of the paper's published `.pth` files.
    Returns (net, encoder or None, config), both modules in eval mode; `noise_free`
    switches the RNN's network noise off (analyses)."""
    if os.path.isdir(path):
        config = load_config(path)
        ckpt = load_checkpoint(os.path.join(path, CHECKPOINT))
    else:
        ckpt = load_checkpoint(path)
        config = legacy_config(path, ckpt)
    env = tasks.training_env(config)
    n_out = ckpt['state_dict']['rec_to_out.weight'].shape[0]
    net = networks.build_network(config, networks.n_inputs(env, config), n_out)
    ensemble.load_member_state_dict(net, 0, ckpt['state_dict'])
    if noise_free and hasattr(net, 'n_sd'):
        net.n_sd = 0
    encoder = networks.build_encoder(config)
    if encoder is not None:
        ensemble.load_member_state_dict(encoder, 0, ckpt['encoder'])
        encoder = encoder.to(device).eval()
    return net.to(device).eval(), encoder, config


def select_network(path, runs_dir, select, run):
    """The network an analysis takes: `path` (a run folder or a paper .pth file), or
    else the run-th of the networks under runs_dir whose config matches `select`."""
    if path is not None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"path {path!r} does not exist")
        return path
    checks.dictionary('select', select)
    found = find_runs(runs_dir, **select)
    if not found:
        raise FileNotFoundError(f"no trained network in {runs_dir!r} matches select={select}")
    if not isinstance(run, int) or not 0 <= run < len(found):
        checks.fail('run', run, f"an index in 0..{len(found) - 1} ({len(found)} networks match select={select})")
    return found[run]


def legacy_config(path, ckpt):
    """Configuration of one of the paper's published checkpoints: sizes come from
    the weights, the rest from the markers its file name carries (SPEC §9)."""
    name = os.path.basename(path)
    sd = ckpt['state_dict']
    config = dict(script_defaults(TRAIN_SCRIPT), loss='paper')  # the release trained with its own BCE
    if any(k.endswith('_l0') for k in sd):
        config['network'] = 'LSTM'
        ckpt['state_dict'] = sd = {_legacy_lstm_key(k): v for k, v in sd.items()}
    elif 'gpt-2' in name:
        config['network'] = 'gpt-2'
    config['leaky'] = 'NoLeak' not in name
    config['encode'] = ckpt.get('encoder') is not None or 'Mix' in name
    m = re.search(r'nTask(\d+)', name)
    config['n_task'] = int(m.group(1)) if m else sd['rec_to_out.weight'].shape[0]
    m = re.search(r'Noise(\d+(?:\.\d+)?)', name)
    if m:
        config['n_sd_in'] = float(m.group(1))
    if config['network'] == 'RNN':
        config['n_neu'] = sd['rec_to_rec.weight'].shape[0]
    elif config['network'] == 'LSTM':
        config['n_neu'] = sd['lstm.weight_hh_l0'].shape[1]
    config.update(run=0, name=os.path.splitext(name)[0])
    return config


def _legacy_lstm_key(key):
    """nn.LSTM weights go under `lstm.`, any other 2-D/1-D weight is the readout."""
    last = key.split('.')[-1]
    if last.endswith('_l0'):
        return 'lstm.' + last
    return 'rec_to_out.' + last
