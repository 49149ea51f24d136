"""Training throughput of the paper's own code release (panvaf/DisentangleRes), measured
on this machine so that ours can be set beside it in the same run (issue 19 asks for
≥ 18× the release's loop). It runs the release's train.py itself, from a checkout:

    git clone https://github.com/panvaf/DisentangleRes /tmp/release
    python benchmarks/bench_release.py --release_dir=/tmp/release

and prints network-batches per second of wall time and, in brackets, per second of the
process's CPU time (steadier on a machine that other jobs load), like bench_train.py.
What is timed is the release's loop at its defaults, one network: leaky ReLU RNN of 64
units, 24 tasks, batch 16 × 22 steps from neurogym's Dataset, frozen 2→100→100→40
encoder, BCE, Adam, its confusion matrix and its progress prints, every batch;
`n_warmup` batches first, untimed. The checkout is only read. The harness changes, at
run time and in memory only:

- the loop line `for i in range(int(n_batch)):` iterates over a counter that stops after
  n_warmup + n_batch batches and marks the clock where the warm-up ends and where the last
  batch ends. The release's n_batch = 1e5 stays, so it prints progress every 1000
  batches as in a full run.
- neurogym 2.x (installed here) no longer exports TrialEnv at the top level, where the
  release (written for an earlier clone of gyyang/neurogym, per its requirements.txt)
  looks for it: `neurogym.TrialEnv` is set to neurogym.core.TrialEnv, the same class.
- the release's tasks return old gym's 4-tuple from `_step`; neurogym 2.x's
  TrialEnv.step unpacks gymnasium's 5-tuple, so `truncated=False` is added. step runs only
  in env.reset() when the Dataset is built; the batches come from new_trial(), untouched.
  So the data source is the installed neurogym's Dataset, not the one it was written for.
- `transformers` (imported at the top of train.py for GPT-2, which the RNN path never
  builds) and `plotly` (imported by util.py for 3-D plots) are replaced by stubs when they
  are not installed; a stub raises if it is ever used.
- it runs in a temporary working directory, so the network it saves after the loop (to
  ../trained_networks/) lands in a temporary folder, deleted afterwards.
- its own prints go to stderr, so stdout holds only this benchmark's lines.
"""
# ---- hyperparameters (override with --name=value or a config file) ----
release_dir = ''  # checkout of the paper's code release (panvaf/DisentangleRes); required
n_batch = 300  # timed batches
n_warmup = 20  # batches run before the clock starts (first-call costs)
n_threads = 1  # CPU threads for torch
# ------------------------------------------------------------------------
import contextlib
import importlib.util
import os
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
from configurator import configure

LOOP = 'for i in range(int(n_batch)):'  # the release's training loop, the one line patched


def check(values):
    """One-line errors for a missing or wrong checkout and impossible counts, before any work."""
    path = values['release_dir']
    if not path:
        raise ValueError("release_dir is required: the path of a checkout of the paper's code release "
                         "(git clone https://github.com/panvaf/DisentangleRes /tmp/release; --release_dir=/tmp/release)")
    if not os.path.isdir(path):
        raise ValueError(f"release_dir {path!r} is not a folder (a checkout of panvaf/DisentangleRes)")
    train_py = os.path.join(path, 'train.py')
    if not os.path.isfile(train_py):
        raise ValueError(f"release_dir {path!r} has no train.py: not a checkout of panvaf/DisentangleRes")
    with open(train_py) as f:
        if f.read().count(LOOP) != 1:
            raise ValueError(f"{train_py} has no line {LOOP!r} to count batches at: "
                             "not the release this harness runs (panvaf/DisentangleRes 4f7ba78)")
    for name, least in (('n_batch', 1), ('n_warmup', 0), ('n_threads', 1)):
        if values[name] < least:
            raise ValueError(f"{name} must be at least {least}; got {values[name]}")


def absent(package, name):
    """A stand-in for class `name` of a package that is not installed: defining
    subclasses works (the release's transformer.py does), building one raises."""
    def refuse(self, *args, **kwargs):
        raise RuntimeError(f"{package}.{name} is a stub of bench_release.py ({package} is not installed)")
    return type(name, (), {'__init__': refuse})


def stub_missing_packages():
    """Stubs for the imports the RNN path needs to pass but never uses."""
    if importlib.util.find_spec('transformers') is None:
        transformers = types.ModuleType('transformers')
        for name in ('GPT2Config', 'GPT2PreTrainedModel', 'GPT2Model'):
            setattr(transformers, name, absent('transformers', name))
        outputs = types.ModuleType('transformers.modeling_outputs')
        outputs.BaseModelOutputWithPastAndCrossAttentions = absent('transformers', 'BaseModelOutputWithPastAndCrossAttentions')
        transformers.modeling_outputs = outputs
        sys.modules.update({'transformers': transformers, 'transformers.modeling_outputs': outputs})
    if importlib.util.find_spec('plotly') is None:
        plotly = types.ModuleType('plotly')
        plotly.graph_objects = types.ModuleType('plotly.graph_objects')
        plotly.io = types.ModuleType('plotly.io')
        plotly.io.renderers = types.SimpleNamespace(default=None)  # util.py sets .default at import
        sys.modules.update({'plotly': plotly, 'plotly.graph_objects': plotly.graph_objects, 'plotly.io': plotly.io})


def gymnasium_step(step):
    """A task's `_step` returning old gym's (ob, reward, done, info) as gymnasium's
    (ob, reward, terminated, truncated, info), which neurogym 2.x's TrialEnv.step unpacks."""
    def adapted(self, action):
        result = step(self, action)
        if len(result) == 4:
            ob, reward, done, info = result
            return ob, reward, done, False, info
        return result
    return adapted


def adapt_to_installed_neurogym():
    """The two API changes between the neurogym the release was written for and 2.x."""
    import neurogym
    import neurogym.core
    if not hasattr(neurogym, 'TrialEnv'):
        neurogym.TrialEnv = neurogym.core.TrialEnv
    import tasks  # the release's (release_dir is first on sys.path); train.py's import finds it here
    for value in vars(tasks).values():
        if isinstance(value, type) and '_step' in vars(value):
            value._step = gymnasium_step(value._step)


def run_release(train_py, n_warmup, n_batch):
    """Execute the release's train.py with its loop capped; return (wall s, CPU s) of the timed batches."""
    marks = {}

    def batches(n_release):
        """Stands for range(int(n_batch)) in the release's loop."""
        if n_warmup + n_batch > n_release:
            sys.exit(f"error: n_warmup + n_batch = {n_warmup + n_batch} exceeds the release's n_batch {n_release}")
        for i in range(n_warmup + n_batch):
            if i == n_warmup:
                marks['start'] = time.time(), time.process_time()
            yield i
        marks['end'] = time.time(), time.process_time()

    with open(train_py) as f:
        source = f.read().replace(LOOP, 'for i in _bench_release_batches(int(n_batch)):')
    namespace = {'__name__': '__main__', '__file__': train_py, '_bench_release_batches': batches}
    with tempfile.TemporaryDirectory() as scratch:
        os.makedirs(os.path.join(scratch, 'trained_networks'))  # its save path: ../trained_networks/
        os.makedirs(os.path.join(scratch, 'cwd'))
        cwd = os.getcwd()
        os.chdir(os.path.join(scratch, 'cwd'))
        try:
            with contextlib.redirect_stdout(sys.stderr):
                exec(compile(source, train_py, 'exec'), namespace)
        except ModuleNotFoundError as e:
            sys.exit(f"error: the release's code needs the module {e.name!r}, which is not installed")
        finally:
            os.chdir(cwd)
    (wall0, cpu0), (wall1, cpu1) = marks['start'], marks['end']
    return wall1 - wall0, cpu1 - cpu0


if __name__ == '__main__':
    hp = configure(globals(), doc=__doc__, print_config=False, check=check)
    release = os.path.abspath(hp['release_dir'])
    # the release's modules (tasks, util, RNN, transformer) share names with ours: only its folder is searched
    sys.path.remove(HERE)
    sys.path.insert(0, release)
    sys.dont_write_bytecode = True  # no __pycache__ in the checkout: it is only read
    import torch

    torch.set_num_threads(hp['n_threads'])
    stub_missing_packages()
    adapt_to_installed_neurogym()
    import neurogym
    print(f"release {release}, neurogym {neurogym.__version__}, torch {torch.__version__}, {hp['n_threads']} thread(s), "
          f"{hp['n_batch']} batches after {hp['n_warmup']} warm-up", flush=True)
    wall, cpu = run_release(os.path.join(release, 'train.py'), hp['n_warmup'], hp['n_batch'])
    print(f"RESULT release RNN: 1 network {hp['n_batch'] / wall:.0f} network-batches/s "
          f"({hp['n_batch'] / cpu:.0f} per CPU-second)", flush=True)
