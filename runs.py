"""A run folder: its name, its state, its config.json, its lock and the command that
finishes it. Torch-free, so the sweep planner reads run folders as fast as the
checkpoint code does (checkpoints.py saves and loads what is inside them).

A run folder `out_dir/<name>/` holds `config.json` (written with the first
checkpoint), `net.pth` and, once training ended, `metrics.json` (SPEC §4). Its state
is one of FINISHED (metrics.json), PARTIAL (net.pth only: `train.py --resume=True`
continues it) or MISSING (no folder, or one killed before its first checkpoint:
train.py starts it afresh); checkpoints.run_state adds BROKEN, a checkpoint or
metrics file that exists but does not load."""
import fcntl
import json
import os
import re
import socket
import time

import configurator

CHECKPOINT = 'net.pth'
CONFIG = 'config.json'
METRICS = 'metrics.json'
TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'train.py')

FINISHED, PARTIAL, MISSING, BROKEN = 'finished', 'partial', 'missing', 'broken'

# how and where a network was trained: never part of its name or a difference between networks
BOOKKEEPING = frozenset({'out_dir', 'device', 'n_threads', 'data_threads', 'cuda_graph', 'resume', 'ckpt_every',
                         'python', 'torch', 'numpy', 'neurogym', 'git_commit'})
# a network's place in its sweep: the networks of one curve differ in these
SWEEP_KEYS = frozenset({'n_task', 'run', 'runs', 'seed', 'member_seed', 'name'})
# left out of folder names (n_task and run end every name; a non-default seed stays in it)
NAME_SKIP = BOOKKEEPING | {'n_task', 'run', 'runs'}
# hyperparameters added after runs were saved, with the value those runs were trained with
EARLIER_DEFAULTS = {'loss': 'logits', 'dropout': 0.1, 'enc_hidden': 100, 'enc_out': 40, 'boundary_seed': 0}
# settings only some tasks read: networks of the other tasks never differ in them
TASK_SETTINGS = {'boundary_seed': ('LinearClassificationHighDim',)}


def reads_setting(config, name):
    """Whether a network with this config reads hyperparameter `name` (TASK_SETTINGS)."""
    if name not in TASK_SETTINGS:
        return True
    task = config.get('task')
    return bool((set(task) if isinstance(task, (list, tuple)) else {task}) & set(TASK_SETTINGS[name]))
# train.py's training budget (n_batch) when none is given, per network type
DEFAULT_BATCHES = {'RNN': 100_000, 'LSTM': 100_000, 'gpt-2': 20_000}


def run_name(config, defaults, n_task, run):
    """A run folder's readable name: the hyperparameters that differ from `defaults`
    (train.py's, with the network type's default budget), then nTask<k> and run<r>,
    e.g. `network-LSTM_nTask24_run0`. train.py names its folders with it, and the sweep
    planner finds a network's analyses by it before the network exists."""
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


# ---------------------------------------------------------------------------------
# Reading a run folder

def load_json(path):
    """A JSON file; a missing or corrupt one is an error naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'{path} does not exist') from None
    except json.JSONDecodeError as e:
        raise ValueError(f'{path} is corrupt (not valid JSON: {e})') from None
    except UnicodeDecodeError as e:
        raise ValueError(f'{path} is corrupt (not text: {e})') from None


def load_config(folder):
    """A run folder's config.json, completed with what older runs were trained with
    for hyperparameters added since (e.g. loss='logits')."""
    config = load_json(os.path.join(folder, CONFIG))
    if not isinstance(config, dict):
        raise ValueError(f'{os.path.join(folder, CONFIG)} is corrupt (not a JSON object)')
    return {**EARLIER_DEFAULTS, **config}


def state(folder):
    """FINISHED, PARTIAL or MISSING of a run folder (None: no folder), from the files
    it holds; nothing is loaded (see checkpoints.run_state for that)."""
    if folder and os.path.exists(os.path.join(folder, METRICS)):
        return FINISHED
    if folder and os.path.exists(os.path.join(folder, CHECKPOINT)):
        return PARTIAL
    return MISSING


def finished(folder, n_batch):
    """True when the folder holds a network trained for n_batch batches."""
    if state(folder) != FINISHED:
        return False
    return load_json(os.path.join(folder, METRICS)).get('batches_done') == n_batch


def budget(folder):
    """The n_batch a partly trained run is training towards (None when unknown)."""
    try:
        return load_config(folder).get('n_batch')
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------
# The lock: one process trains a network at a time

class RunLock:
    """An exclusive lock on a run folder (`.lock` inside it), so two processes never
    train the same network; the holder's pid, host and start time are in the file."""

    def __init__(self, folder):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, '.lock')
        self.file = open(self.path, 'a+')
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or 'another process'
            self.file.close()
            raise FileExistsError(f'{folder} is being trained by {holder}; wait for it or stop it') from None
        self.file.truncate(0)
        self.file.write(f'pid {os.getpid()} on {socket.gethostname()} since {time.strftime("%Y-%m-%d %H:%M:%S")}')
        self.file.flush()

    def release(self):
        """Unlock; the folder goes too if training left nothing in it."""
        self.file.close()
        os.remove(self.path)
        folder = os.path.dirname(self.path)
        if not os.listdir(folder):
            os.rmdir(folder)


# ---------------------------------------------------------------------------------
# The commands that train or finish a run

def train_command(config, **override):
    """The train.py command line for a configuration: its hyperparameters that differ
    from train.py's defaults, then `override` (e.g. resume=True)."""
    defaults = configurator.script_defaults(TRAIN_SCRIPT)
    values = {**{k: v for k, v in config.items() if k in defaults}, **override}
    return configurator.command('train.py', {k: v for k, v in values.items() if k in override or v != defaults[k]})


def resume_command(folder):
    """The train.py command that finishes a partly trained run: its hyperparameters
    (from its config.json), its n_task and run alone, its folder's parent as out_dir,
    and --resume=True."""
    config = load_config(folder)
    return train_command(config, n_task=config['n_task'], run=config['run'], runs=1,
                         out_dir=os.path.dirname(os.path.abspath(folder)), resume=True)


def refuse_partial(runs):
    """ValueError naming the partly trained runs {where: (batch, of)} and how to finish them."""
    lines = []
    for where, (batch, of) in runs.items():
        at = f"batch {batch}" + (f" of {of}" if of else '') if batch is not None else 'an unknown batch'
        lines.append(f"  {where} (at {at})\n    finish it: {resume_command(where)}")
    return ValueError(f"{len(runs)} selected network(s) are only partly trained (no {METRICS} yet):\n"
                      + '\n'.join(lines) + "\nor evaluate them as they are with --unfinished=True")
