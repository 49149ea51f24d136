"""Trained networks on disk: atomic writes, safe loading (ours and the paper's
published checkpoints) and finding runs by their config.

A run folder (runs.py: its name, state, config and lock) holds `config.json`,
`net.pth` and `metrics.json` (SPEC §4). `net.pth` loads with
`torch.load(..., weights_only=True)`."""
import difflib
import glob
import os
import re
import sys
import warnings

import numpy as np
import torch

import checks
import ensemble
import networks
import runs
import tasks
from configurator import check_type, script_defaults
from results import atomic_write, save_json  # noqa: F401 (callers save JSON through checkpoints too)
from runs import CHECKPOINT, CONFIG, METRICS, TRAIN_SCRIPT, load_config, load_json  # noqa: F401 (callers use them from here too)


# ---------------------------------------------------------------------------------
# Atomic writes: a crash mid-write never leaves a truncated file behind (results.atomic_write,
# the one writer, torch-free; save_json is results' too, kept importable from here)

def save_torch(obj, path):
    """torch.save through a temporary file and a rename."""
    atomic_write(path, lambda f: torch.save(obj, f))


def check_output(name, folder, keep=True):
    """checks.writable: the output folder of hyperparameter `name`, probed before any work."""
    return checks.writable(name, folder, keep)


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
    paper's files). Missing, empty, corrupt or unsafe files give a one-line error
    naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    if os.path.getsize(path) == 0:
        raise ValueError(f'checkpoint {path} is empty (0 bytes): not a trained network')
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise ValueError(f'checkpoint {path} {_load_problem(e)}') from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('state_dict'), dict):
        raise ValueError(f'checkpoint {path} has no state_dict: not a trained network')
    return ckpt


def _load_problem(error):
    """What torch.load's error says is wrong with a file, without torch's advice
    (which suggests loading unsafe files with weights_only=False: we never do)."""
    text = str(error)
    unsafe = re.search(r'GLOBAL ([\w.]+)', text)
    if unsafe:
        return (f'is not a safe checkpoint and was not loaded: it asks to import {unsafe.group(1)}, '
                'and only tensors, numpy arrays and plain values may be read from a checkpoint')
    advice = ('weights only load failed', 'weights_only', 'please file an issue', 'check the documentation')
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not any(a in line.lower() for a in advice)]
    reason = (lines[0].replace('WeightsUnpickler error:', '').split('. ')[0].strip() if lines
              else 'the file ends early' if isinstance(error, EOFError) else type(error).__name__)
    return f'is corrupt (not a complete torch checkpoint: {reason})'


# ---------------------------------------------------------------------------------
# Run folders (train.py names them with runs.run_name)

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
    folders = {os.path.dirname(p) for name in (CONFIG, CHECKPOINT) for p in glob.glob(os.path.join(root, '*', name))}
    for where in sorted(folders):
        try:
            scanned.append((where, load_config(where), None))
        except (OSError, ValueError) as e:  # a folder with a checkpoint but no config.json too
            scanned.append((where, None, str(e)))
    for path in sorted(glob.glob(os.path.join(root, '*.pth'))):
        try:
            scanned.append((path, legacy_config(path, load_checkpoint(path)), None))
        except (OSError, ValueError) as e:
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
# The state of a run (the vocabulary is runs.py's)

def run_state(where):
    """(state, batches trained, problem) of a run folder or a paper .pth file, as
    runs.state gives it, with its files loaded: FINISHED once train.py wrote
    metrics.json (its last step; the paper's files are finished), PARTIAL with a
    checkpoint but no metrics.json (batches: the checkpoint's), MISSING without a
    checkpoint, BROKEN with a checkpoint or metrics.json that does not load
    (`problem` says what is wrong for MISSING and BROKEN)."""
    if not os.path.isdir(where):  # the paper's files name their budget, e.g. ...batch1e5...
        try:
            load_checkpoint(where)
        except (FileNotFoundError, ValueError) as e:
            return runs.BROKEN, None, str(e)
        m = re.search(r'batch(\d+(?:\.\d+)?(?:e\d+)?)', os.path.basename(where))
        return runs.FINISHED, int(float(m.group(1))) if m else None, None
    if runs.state(where) == runs.MISSING:
        return runs.MISSING, None, f'no {CHECKPOINT}: training stopped before its first checkpoint'
    try:
        resume = load_checkpoint(os.path.join(where, CHECKPOINT)).get('resume') or {}
    except (FileNotFoundError, ValueError) as e:
        return runs.BROKEN, None, str(e)
    batch = resume.get('batch')
    if runs.state(where) == runs.PARTIAL:
        return runs.PARTIAL, batch, None
    try:
        metrics = load_json(os.path.join(where, METRICS))
    except (OSError, ValueError) as e:
        return runs.BROKEN, batch, str(e)
    return runs.FINISHED, metrics.get('batches_done', batch), None


def fingerprint(where):
    """What identifies a network's current weights for reusing saved results: its
    path and its checkpoint's size and modification time (retraining changes them)."""
    path = os.path.join(where, CHECKPOINT) if os.path.isdir(where) else where
    stat = os.stat(path)
    return [os.path.abspath(where), stat.st_size, stat.st_mtime_ns]


class BrokenRuns(ValueError):
    """Raised at the end of an evaluation that skipped broken runs: the results of
    the others are written; the message lists the skipped ones."""

    def __init__(self, broken, wrote, none_found=None):
        """`none_found`: why nothing was evaluated, when no readable run matched."""
        self.broken, self.wrote = dict(broken), wrote
        lines = '\n'.join(f'  {where}: {problem}' for where, problem in self.broken.items())
        if none_found:
            head = f"{none_found}; {len(self.broken)} broken run(s) there cannot be read and may be among them"
        elif wrote:
            head = (f"{len(self.broken)} broken run(s) skipped (their results are NaN); "
                    f"the rest was evaluated and written to {wrote}")
        else:
            head = f"{len(self.broken)} broken run(s) skipped; no other network was selected, nothing was written"
        super().__init__(f"{head}:\n{lines}")


# ---------------------------------------------------------------------------------
# Sweeps: the networks an evaluation over task counts takes



def find_sweep(root, select, n_tasks, n_runs, unfinished=False, loaded=None):
    """The networks an evaluation over task counts takes: for each task count, the
    first n_runs runs under root whose config matches `select`. Before any work:
    - task counts without any network are left out with a note (an error when no
      task count has one: nothing to evaluate);
    - networks that differ in a hyperparameter other than n_task, run and seed (and
      bookkeeping) would be pooled into one curve: an error naming what differs and a
      select that splits them;
    - partly trained networks are refused (an error naming each and the command that
      finishes it) unless `unfinished`;
    - broken runs (no, an empty or a corrupt checkpoint, an invalid config value,
      weights that are not finite or do not fit the config) stay in their slot and
      are listed in `broken`, with the folders whose config.json cannot be read and
      the paper's files that do not load (an unsafe one included): the evaluation
      skips them, finishes the rest and reports them at the end (BrokenRuns); when
      no readable run matches, BrokenRuns lists them at once.
    Returns (folders {n_task: [run folder or .pth, ...]} of the task counts found,
    batches {where: batches trained}, broken {where: problem}). `loaded`, a dict when
    given, receives {run folder: (fingerprint, (net, encoder, config))} of the
    networks loaded to classify them (on the CPU; `placed` puts one on a device), so
    an evaluation loads each network once (again only if its fingerprint changed
    since). The paper's files are not kept: they load again when evaluated, where
    their warning is said."""
    scanned = _scan(root)
    folders = {k: _matching(scanned, {**select, 'n_task': k}, root)[:n_runs] for k in n_tasks}
    missing = [k for k, f in folders.items() if not f]
    broken = {where: problem for where, config, problem in scanned if config is None}
    if len(missing) == len(folders):
        none_found = f"no trained networks in {root!r} match select={select} with n_task in {missing}"
        if broken:
            raise BrokenRuns(broken, wrote=None, none_found=none_found)
        raise FileNotFoundError(f"{none_found}; train them first (python train.py --n_task={missing})")
    if missing:
        print(f"note: no trained networks in {root!r} match select={select} with n_task in {missing}: "
              f"evaluating the task counts found, {[k for k in folders if folders[k]]}")
    folders = {k: f for k, f in folders.items() if f}
    for k, found in folders.items():
        if len(found) < n_runs:
            print(f"warning: only {len(found)} of n_runs={n_runs} networks found for n_task={k}; "
                  "the rest stay NaN", file=sys.stderr)
    configs = {where: config for where, config, _ in scanned if any(where in f for f in folders.values())}
    batches, partly = {}, {}
    for where in configs:
        state, batches[where], problem = run_state(where)
        if state not in (runs.BROKEN, runs.MISSING):  # the network must build from its config and load, with finite weights
            try:
                weights = fingerprint(where)
                with warnings.catch_warnings():  # what a paper's file lacks is said when it is evaluated
                    warnings.simplefilter('ignore')
                    network = _load_network(where)  # classifying a run is not evaluating it
                if loaded is not None and os.path.isdir(where):
                    loaded[where] = weights, network
            except (OSError, ValueError) as e:
                state, problem = runs.BROKEN, str(e)
        if state in (runs.BROKEN, runs.MISSING):
            broken[where] = problem
        elif state == runs.PARTIAL:
            partly[where] = (batches[where], runs.budget(where))
    _check_one_condition({where: config for where, config in configs.items() if where not in broken}, select)
    if partly and not unfinished:
        raise runs.refuse_partial(partly)
    return folders, batches, broken


def _check_one_condition(configs, select):
    """ValueError when the networks of one curve differ in a hyperparameter beyond
    runs.SWEEP_KEYS and runs.BOOKKEEPING, naming the keys, their values and a select that splits them."""
    keys = sorted(set().union(*configs.values()) - runs.SWEEP_KEYS - runs.BOOKKEEPING)
    differ = {}
    for key in keys:
        counts = {}
        for config in configs.values():
            if not runs.reads_setting(config, key):  # e.g. the boundaries of a task that has none
                continue
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

def load_network(path, device='cpu', noise_free=False):
    """Rebuild a trained network (see _load_network); the one loader the scripts call."""
    return _load_network(path, device, noise_free)


def _load_network(path, device='cpu', noise_free=False):
    """Rebuild a trained network (one member), its frozen encoder and its config
    from a run folder of ours or from one of the paper's published `.pth` files.
    Returns (net, encoder or None, config), both modules in eval mode; `noise_free`
    switches the RNN's network noise off (analyses). A config value of the wrong
    type, weights that are not finite or do not fit the config are a ValueError
    naming the run. The paper's files hold no trained readout: the LSTM's and
    gpt-2's rec_to_out is NaN, the RNN's is its file's (untrained); a warning
    says what that rules out."""
    if os.path.isdir(path):
        config = load_config(path)
        ckpt = load_checkpoint(os.path.join(path, CHECKPOINT))
    else:
        ckpt = load_checkpoint(path)
        config = legacy_config(path, ckpt)
    _check_config(path, config)
    state, enc_state = ckpt['state_dict'], ckpt.get('encoder')
    for name, weights in (('state_dict', state), ('encoder', enc_state or {})):
        bad = [k for k, v in weights.items() if torch.is_tensor(v) and v.is_floating_point()
               and not torch.isfinite(v).all()]
        if bad:
            raise ValueError(f"{path}: its weights are not finite (NaN or inf in {name} {bad[0]!r}): "
                             "the training diverged; retrain it")
    try:
        envs = tasks.training_envs(config)
        n_out = (state['rec_to_out.weight'].shape[0] if 'rec_to_out.weight' in state
                 else sum(env.n_out for env in envs))
        net = networks.build_network(config, networks.n_inputs(envs[0], config), n_out)
        encoder = networks.build_encoder(config)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path}: its configuration does not describe a network ({e})") from None
    if not os.path.isdir(path):  # the release trained a separate decoder and never saved it
        if 'rec_to_out.weight' in state:  # an RNN's own layer: untrained in the release's final code
            lacks = "hold a rec_to_out layer that is not the readout they were trained with (the release"
        else:
            lacks = "hold no readout (the release"
            state = {**state, **{k: torch.full_like(v[0], float('nan')) for k, v in net.state_dict().items()
                                 if k.startswith('rec_to_out.')}}
        warnings.warn(f"the paper's {config['network']} checkpoints {lacks} trained a separate decoder and "
                      "did not save it): their hidden states, all that generalize.py, sparsity.py and the "
                      "analyses use, load; the network's outputs (NaN where no readout was saved) are not "
                      "its trained outputs, so nothing read from them (e.g. task accuracy) can be computed",
                      stacklevel=2)
    try:
        ensemble.load_member_state_dict(net, 0, state)
        if encoder is not None:
            if enc_state is None:
                raise ValueError('it holds no encoder weights, but its config has encode=True')
            ensemble.load_member_state_dict(encoder, 0, enc_state)
    except ValueError as e:
        raise ValueError(f"{path}: its checkpoint does not fit the network its config describes ({e})") from None
    return placed((net, encoder, config), device, noise_free)


def placed(network, device='cpu', noise_free=False):
    """A loaded (net, encoder or None, config) on `device`, both modules in eval mode;
    `noise_free` switches the RNN's network noise off."""
    net, encoder, config = network
    if noise_free and hasattr(net, 'n_sd'):
        net.n_sd = 0
    if encoder is not None:
        encoder = encoder.to(device).eval()
    return net.to(device).eval(), encoder, config


def _check_config(where, config):
    """ValueError naming the run and the hyperparameter when a config value does not
    have the type of train.py's default (e.g. "n_neu": "sixty-four")."""
    defaults = script_defaults(TRAIN_SCRIPT)
    for key, value in config.items():
        if key in defaults:
            try:
                check_type(key, value, defaults[key], allow_list=key == 'task')  # several task families
            except ValueError as e:
                raise ValueError(f"{where}: its {CONFIG} is invalid: {e}") from None


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
        scanned = _scan(runs_dir)
        found = _matching(scanned, select, runs_dir)
        if not found:
            none_found = f"no trained network in {runs_dir!r} matches select={select}"
            broken = {where: problem for where, config, problem in scanned if config is None}
            if broken:
                raise BrokenRuns(broken, wrote=None, none_found=none_found)
            raise FileNotFoundError(none_found)
        if not isinstance(index, int) or not 0 <= index < len(found):
            checks.fail('index', index, f"an index in 0..{len(found) - 1} ({len(found)} networks match select={select})")
        where = found[index]
    state, batches, problem = run_state(where)
    if state in (runs.BROKEN, runs.MISSING):
        raise ValueError(f"{where} is broken: {problem}")
    if state == runs.PARTIAL and not unfinished:
        raise runs.refuse_partial({where: (batches, runs.budget(where))})
    return where, batches


def legacy_config(path, ckpt):
    """Configuration of one of the paper's published checkpoints: sizes come from
    the weights, the rest from the markers its file name carries (SPEC §9); an absent
    nTask marker means 2 (the release leaves nTask2 out of its names). Rewrites
    ckpt['state_dict'] to our parameter names (LSTM: nn.LSTM's keys under `lstm.`;
    gpt-2: see _legacy_gpt_state)."""
    name = os.path.basename(path)
    sd = ckpt['state_dict']
    config = dict(script_defaults(TRAIN_SCRIPT), loss='paper')  # the release trained with its own BCE
    if any(k.endswith('_l0') for k in sd):
        config['network'] = 'LSTM'
        ckpt['state_dict'] = sd = {_legacy_lstm_key(k): v for k, v in sd.items()}
    elif 'gpt-2' in name or any(k.startswith('transformer.') for k in sd):
        config['network'] = 'gpt-2'
        ckpt['state_dict'] = sd = _legacy_gpt_state(path, sd)
    config['leaky'] = 'NoLeak' not in name
    config['encode'] = ckpt.get('encoder') is not None or 'Mix' in name
    if 'tanh' in name:  # the release names a non-default activation (its prefix 'Tanh' is the task's output)
        config['activation'] = 'tanh'
    if 'Quad' in name:
        config['activ_enc'] = 'Quad'
    for marker, key, kind in (('nTask', 'n_task', int), ('Noise', 'n_sd_in', float), ('tau', 'tau', float),
                              ('nDim', 'n_dim', int), ('nHead', 'n_head', int)):
        m = re.search(marker + r'(\d+(?:\.\d+)?)', name)
        if m:
            config[key] = kind(float(m.group(1)))
        elif key == 'n_task':
            config[key] = 2
    sizes = {'RNN': 'rec_to_rec.weight', 'LSTM': 'lstm.weight_hh_l0', 'gpt-2': 'wte.weight'}[config['network']]
    if sizes not in sd:
        raise ValueError(f"{path} is not a {config['network']} checkpoint of the paper's: it has no {sizes!r} "
                         f"(its keys: {', '.join(list(sd)[:6])}{', ...' if len(sd) > 6 else ''})")
    config['n_neu'] = sd[sizes].shape[1] if config['network'] == 'LSTM' else sd[sizes].shape[0]
    if config['network'] == 'gpt-2':
        config['n_layer'] = len({k.split('.')[1] for k in sd if k.startswith('h.')})
        if 'nHead' not in name:
            raise ValueError(f"{path}: the number of attention heads cannot be told from the weights, "
                             "and its name carries no nHead<k> marker")
    if ckpt.get('encoder') is not None and '0.weight' in ckpt['encoder']:
        config['n_dim'] = ckpt['encoder']['0.weight'].shape[1]
    config.update(run=0, name=os.path.splitext(name)[0])
    return config


def _legacy_lstm_key(key):
    """The release saved a bare nn.LSTM (and no readout): its weights go under `lstm.`;
    any other key is kept, so the loader names it as unexpected."""
    return 'lstm.' + key if re.fullmatch(r'(weight|bias)_(ih|hh)_l0', key) else key


def _legacy_gpt_state(path, sd):
    """The release's GPT-2 (a Linear `input_projection` into Hugging Face's GPT2Model,
    no readout saved) under our transformer's names: input_projection -> wte,
    transformer.h.<i>.* -> h.<i>.*, transformer.ln_f -> ln_f, and the Conv1D weights
    of c_attn, c_proj and c_fc, stored (in, out), transposed to (out, in). Its token
    embedding is unused (inputs are projected) and its position embeddings are zero
    and frozen (checked: ours has none); the attention-mask buffers are dropped."""
    wpe = sd.get('transformer.wpe.weight')
    if wpe is not None and torch.as_tensor(wpe).any():
        raise ValueError(f"{path}: its position embeddings are not zero, and our transformer has none")
    state = {}
    for key, value in sd.items():
        if key in ('transformer.wte.weight', 'transformer.wpe.weight') or re.fullmatch(
                r'transformer\.h\.\d+\.attn\.(bias|masked_bias)', key):
            continue
        if key.startswith('input_projection.'):
            key = 'wte.' + key.split('.', 1)[1]
        elif key.startswith('transformer.'):
            key = key.split('.', 1)[1]
            if re.search(r'\.(c_attn|c_proj|c_fc)\.weight$', key):
                value = torch.as_tensor(value).t()
        state[key] = value
    return state
