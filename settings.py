"""What the keys of a trained network's config mean: which only say how or where it
was trained (never what it learns), which place it in its sweep, and what runs saved
before a hyperparameter existed were trained with. Torch-free: the sweep planner
reads it as well as the checkpoint code."""
import re

# how and where a network was trained: never part of its name or a difference between networks
BOOKKEEPING = frozenset({'out_dir', 'device', 'n_threads', 'data_threads', 'cuda_graph', 'resume', 'ckpt_every',
                         'python', 'torch', 'numpy', 'neurogym', 'git_commit'})
# a network's place in its sweep: the networks of one curve differ in these
SWEEP_KEYS = frozenset({'n_task', 'run', 'runs', 'seed', 'member_seed', 'name'})
# left out of folder names (n_task and run end every name; a non-default seed stays in it)
NAME_SKIP = BOOKKEEPING | {'n_task', 'run', 'runs'}
# hyperparameters added after runs were saved, with the value those runs were trained with
EARLIER_DEFAULTS = {'loss': 'logits', 'dropout': 0.1, 'enc_hidden': 100, 'enc_out': 40, 'boundary_seed': 0}
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
