"""Trained networks on disk: atomic writes, safe loading (ours and the paper's
published checkpoints), readable run folders and finding runs by their config.

A run folder `out_dir/<name>/` holds `config.json`, `net.pth` and `metrics.json`
(SPEC §4). `net.pth` loads with `torch.load(..., weights_only=True)`."""
import difflib
import glob
import json
import os
import re
import shlex
import sys
import tempfile

import numpy as np
import torch

import checks
import ensemble
import networks
import settings
import tasks
from configurator import script_defaults

CHECKPOINT = 'net.pth'
CONFIG = 'config.json'
METRICS = 'metrics.json'
TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'train.py')
# what runs saved before these hyperparameters existed were trained with


# ---------------------------------------------------------------------------------
# Atomic writes: a crash mid-write never leaves a truncated file behind

def _atomic(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path), suffix='.tmp')
    try:
        # mkstemp makes the file 0600; give it the permissions any other file gets
        # under the umask (as numpy's and matplotlib's files), so a shared folder stays readable
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


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


def check_output(name, folder, keep=True):
    """Create the output folder of hyperparameter `name` and write (and remove) a
    probe file in it, so that an unwritable, impossible or too long location fails
    before any work, with one line naming it, instead of after it. keep=False removes
    again the folders the probe created: a later refusal then leaves nothing behind."""
    shown = folder if len(folder) <= 100 else f'{folder[:60]}... ({len(folder)} characters)'
    created, parent = [], os.path.abspath(folder)
    while parent and not os.path.exists(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix='.write-probe')
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise OSError(f"cannot write to {name}={shown!r}: {e.strerror or e}") from None
    if not keep:
        for path in created:  # deepest first
            os.rmdir(path)
    return folder


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
# Run folders (train.py names them with settings.run_name)

def find_runs(root='trained_networks', **criteria):
    """Run folders under `root` (and the paper's published `.pth` files lying in it)
    whose config matches every criterion, sorted by (n_task, run, name), whatever
    their state (see run_state). A value may be a list of accepted values, e.g.
    `find_runs(root, network='RNN', n_task=[2, 24])`; a key no run's config has is an
    error suggesting the close match. Runs whose config cannot be read are left out
    (find_sweep lists them)."""
    return _matching(_scan(root), criteria, root)


def _scan(root):
    """(where, config or None, problem) of every run under root: the folders holding
    a config.json and the paper's .pth files lying in root."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f'runs_dir {root!r} does not exist')
    scanned = []
    for path in sorted(glob.glob(os.path.join(root, '*', CONFIG))):
        where = os.path.dirname(path)
        try:
            scanned.append((where, load_config(where), None))
        except (OSError, ValueError) as e:
            scanned.append((where, None, str(e)))
    for path in sorted(glob.glob(os.path.join(root, '*.pth'))):
        try:
            scanned.append((path, legacy_config(path, load_checkpoint(path)), None))
        except (ValueError, KeyError) as e:
            scanned.append((path, None, str(e)))
    return scanned


def _matching(scanned, criteria, root):
    """The runs of `scanned` whose readable config matches every criterion, sorted."""
    configs = [config for _, config, _ in scanned if config is not None]
    known = set().union(*configs)
    for key in criteria:
        if configs and key not in known:  # a typo would otherwise read as "no such network"
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ''
            raise ValueError(f"select key {key!r} is unknown: no run in {root!r} has it in its "
                             f"config{hint} (known keys: {', '.join(sorted(known))})")
    found = [(config['n_task'], config['run'], where) for where, config, _ in scanned
             if config is not None and all(_matches(config.get(k, _MISSING), v) for k, v in criteria.items())]
    return [where for _, _, where in sorted(found)]


# ---------------------------------------------------------------------------------
# The state of a run: finished, partly trained or broken

FINISHED, UNFINISHED, BROKEN = 'finished', 'unfinished', 'broken'


def run_state(where):
    """(state, batches trained, problem) of a run folder or a paper .pth file:
    FINISHED once train.py wrote metrics.json (its last step; the paper's files are
    finished), UNFINISHED with a checkpoint but no metrics.json (batches: the
    checkpoint's), BROKEN without a checkpoint or with one that does not load
    (`problem` says which). Loads the checkpoint, so a corrupt one shows here."""
    if not os.path.isdir(where):  # the paper's files name their budget, e.g. ...batch1e5...
        try:
            load_checkpoint(where)
        except (FileNotFoundError, ValueError) as e:
            return BROKEN, None, str(e)
        m = re.search(r'batch(\d+(?:\.\d+)?(?:e\d+)?)', os.path.basename(where))
        return FINISHED, int(float(m.group(1))) if m else None, None
    path = os.path.join(where, CHECKPOINT)
    if not os.path.exists(path):
        return BROKEN, None, f'no {CHECKPOINT}: training stopped before its first checkpoint'
    try:
        resume = load_checkpoint(path).get('resume') or {}
    except ValueError as e:
        return BROKEN, None, str(e)
    batch = resume.get('batch')
    if not os.path.exists(os.path.join(where, METRICS)):
        return UNFINISHED, batch, None
    try:
        metrics = load_json(os.path.join(where, METRICS))
    except (OSError, ValueError) as e:
        return BROKEN, batch, str(e)
    return FINISHED, metrics.get('batches_done', batch), None


def fingerprint(where):
    """What identifies a network's current weights for reusing saved results: its
    path and its checkpoint's size and modification time (retraining changes them)."""
    path = os.path.join(where, CHECKPOINT) if os.path.isdir(where) else where
    stat = os.stat(path)
    return [os.path.abspath(where), stat.st_size, stat.st_mtime_ns]


def train_command(config, **override):
    """The train.py command line for a configuration: its hyperparameters that differ
    from train.py's defaults, then `override` (e.g. resume=True)."""
    defaults = script_defaults(TRAIN_SCRIPT)
    values = {**{k: v for k, v in config.items() if k in defaults}, **override}
    return ' '.join(['python train.py'] + [_flag(k, v) for k, v in values.items()
                                           if k in override or v != defaults[k]])


def resume_command(folder):
    """The train.py command that finishes a partly trained run: its hyperparameters
    (from its config.json), its n_task and run alone, its folder's parent as out_dir,
    and --resume=True."""
    config = load_json(os.path.join(folder, CONFIG))
    return train_command(config, n_task=config['n_task'], run=config['run'], runs=1,
                         out_dir=os.path.dirname(os.path.abspath(folder)), resume=True)


def _flag(key, value):
    """--key=value as the configurator reads it, quoted for the shell when needed
    (--timing="{'fixation': 100, ...}", as the README writes it)."""
    flag = f'--{key}={value}' if isinstance(value, str) else f'--{key}={value!r}'
    if re.fullmatch(r'[\w.,:/+=@%-]*', flag):
        return flag
    if not re.search(r'["$`\\!]', flag):
        return f'--{key}="{flag[len(key) + 3:]}"'
    return shlex.quote(flag)


def refuse_unfinished(runs):
    """ValueError naming the partly trained runs {where: (batch, of)} and how to finish them."""
    lines = []
    for where, (batch, of) in runs.items():
        at = f"batch {batch}" + (f" of {of}" if of else '') if batch is not None else 'an unknown batch'
        lines.append(f"  {where} (at {at})\n    finish it: {resume_command(where)}")
    return ValueError(f"{len(runs)} selected network(s) are only partly trained (no {METRICS} yet):\n"
                      + '\n'.join(lines) + "\nor evaluate them as they are with --unfinished=True")


def _checkpoint_budget(where):
    """The n_batch a partly trained run is training towards (for messages)."""
    try:
        return load_config(where).get('n_batch')
    except (OSError, ValueError):
        return None


class BrokenRuns(ValueError):
    """Raised at the end of an evaluation that skipped broken runs: the results of
    the others are written; the message lists the skipped ones."""

    def __init__(self, broken, wrote):
        self.broken, self.wrote = dict(broken), wrote
        lines = '\n'.join(f'  {where}: {problem}' for where, problem in self.broken.items())
        done = (f"the rest was evaluated and written to {wrote}" if wrote else
                "no other network was selected, nothing was written")
        super().__init__(f"{len(self.broken)} broken run(s) skipped (their results are NaN); "
                         f"{done}:\n{lines}")


# ---------------------------------------------------------------------------------
# Sweeps: the networks an evaluation over task counts takes



def find_sweep(root, select, n_tasks, n_runs, unfinished=False):
    """The networks an evaluation over task counts takes: for each task count, the
    first n_runs runs under root whose config matches `select`. Before any work:
    - task counts without any network are left out with a note (an error when no
      task count has one: nothing to evaluate);
    - networks that differ in a hyperparameter other than n_task, run and seed (and
      bookkeeping) would be pooled into one curve: an error naming what differs and a
      select that splits them;
    - partly trained networks are refused (an error naming each and the command that
      finishes it) unless `unfinished`;
    - broken runs (no or a corrupt checkpoint, an unreadable config) stay in their
      slot and are listed in `.broken`: the evaluation skips them, finishes the rest
      and reports them at the end (BrokenRuns).
    Returns (folders {n_task: [run folder or .pth, ...]} of the task counts found,
    batches {where: batches trained}, broken {where: problem})."""
    scanned = _scan(root)
    folders = {k: _matching(scanned, {**select, 'n_task': k}, root)[:n_runs] for k in n_tasks}
    missing = [k for k, f in folders.items() if not f]
    if len(missing) == len(folders):
        raise FileNotFoundError(f"no trained networks in {root!r} match select={select} with n_task in "
                                f"{missing}; train them first (python train.py --n_task={missing})")
    if missing:
        print(f"note: no trained networks in {root!r} match select={select} with n_task in {missing}: "
              f"evaluating the task counts found, {[k for k in folders if folders[k]]}")
    folders = {k: f for k, f in folders.items() if f}
    for k, found in folders.items():
        if len(found) < n_runs:
            print(f"warning: only {len(found)} of n_runs={n_runs} networks found for n_task={k}; "
                  "the rest stay NaN", file=sys.stderr)
    configs = {where: config for where, config, _ in scanned if any(where in f for f in folders.values())}
    _check_one_condition(configs, select)
    broken = {where: problem for where, config, problem in scanned if config is None}
    batches, partly = {}, {}
    for where in configs:
        state, batches[where], problem = run_state(where)
        if state == BROKEN:
            broken[where] = problem
        elif state == UNFINISHED:
            partly[where] = (batches[where], _checkpoint_budget(where))
    if partly and not unfinished:
        raise refuse_unfinished(partly)
    return folders, batches, broken


def _check_one_condition(configs, select):
    """ValueError when the networks of one curve differ in a hyperparameter beyond
    settings.SWEEP_KEYS and settings.BOOKKEEPING, naming the keys, their values and a select that splits them."""
    keys = sorted(set().union(*configs.values()) - settings.SWEEP_KEYS - settings.BOOKKEEPING)
    differ = {}
    for key in keys:
        counts = {}
        for config in configs.values():
            text = repr(config[key]) if key in config else '(not set)'
            counts[text] = counts.get(text, 0) + 1
        if len(counts) > 1:
            differ[key] = counts
    if not differ:
        return
    lines = '\n'.join(f"  {key}: " + ', '.join(f'{v} ({n} networks)' for v, n in counts.items())
                      for key, counts in differ.items())
    key = next(iter(differ))
    example = {**select, key: next(config[key] for config in configs.values() if key in config)}
    raise ValueError(f"the networks matching select={select} differ in hyperparameters other than "
                     f"n_task, run and seed, and would be pooled into one curve:\n{lines}\n"
                     f"select one condition, e.g. --select=\"{example!r}\" "
                     "(with its own --label), or train each condition into its own runs_dir")


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
    return {**settings.EARLIER_DEFAULTS, **load_json(os.path.join(folder, CONFIG))}


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


def select_network(path, runs_dir, select, index, unfinished=False):
    """The network an analysis takes: `path` (a run folder or a paper .pth file), or
    else the index-th of the networks under runs_dir whose config matches `select`.
    A broken run is an error saying what is wrong, a partly trained one is refused
    unless `unfinished` (see find_sweep). Returns (where, batches trained)."""
    if path is not None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"path {path!r} does not exist")
        where = path
    else:
        checks.dictionary('select', select)
        found = find_runs(runs_dir, **select)
        if not found:
            raise FileNotFoundError(f"no trained network in {runs_dir!r} matches select={select}")
        if not isinstance(index, int) or not 0 <= index < len(found):
            checks.fail('index', index, f"an index in 0..{len(found) - 1} ({len(found)} networks match select={select})")
        where = found[index]
    state, batches, problem = run_state(where)
    if state == BROKEN:
        raise ValueError(f"{where} is broken: {problem}")
    if state == UNFINISHED and not unfinished:
        raise refuse_unfinished({where: (batches, _checkpoint_budget(where))})
    return where, batches


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
