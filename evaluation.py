"""The loop every sweep evaluation shares (generalize.py, sparsity.py): find the
networks, refuse before any work what could not be written, evaluate each network (or
reuse what an interrupted run saved), skip broken runs, record the batches each network
was trained for, write the results and report.

A script supplies only its science: `measure(net, encoder, config, n_task)`, one
network's arrays, and `describe(arrays)`, its progress line.
"""
import os
import sys
import time

import numpy as np

import checkpoints
import configurator
import results
import util


class Sweep:
    """One evaluation of the networks under hp['runs_dir'] into hp['results_dir']/<names>.

    Built before any work: the output folder is writable, the networks are found and
    classified (checkpoints.find_sweep: partly trained ones refused, broken ones kept
    aside), and no existing result made from other networks would be replaced
    (results.refuse_replacing, unless hp['overwrite']). `names`: the result names this
    evaluation writes (the first also names the per-network folder `<name>.partial/`);
    `settings`: what one network's numbers depend on (results.Partial)."""

    def __init__(self, hp, script, names, settings):
        self.hp, self.script = hp, script
        checkpoints.check_output('results_dir', hp['results_dir'], keep=False)
        self.loaded = {}  # the networks find_sweep loaded to classify them: evaluated without loading again
        self.folders, self.batches, self.broken = checkpoints.find_sweep(
            hp['runs_dir'], hp['select'], hp['n_tasks'], hp['n_runs'], hp['unfinished'], loaded=self.loaded)
        self.n_tasks = list(self.folders)  # the task counts found
        self.stems = [os.path.join(hp['results_dir'], name) for name in names]
        evaluated = {where: self.batches.get(where) for found in self.folders.values() for where in found
                     if where not in self.broken}
        for stem in self.stems:
            results.refuse_replacing(stem + '.npz', stem + '.json', evaluated, hp['overwrite'])
        os.makedirs(hp['results_dir'], exist_ok=True)
        self.partial = results.Partial(self.stems[0], settings)
        self.device = util.pick_device(hp['device'])
        util.set_threads(hp['n_threads'])
        self.t0 = time.time()

    def evaluate(self, measure, describe, noise_free=False, inspect=None):
        """Every network's arrays, measured or reused: {key: (n_tasks, n_runs, ...)} with
        NaN where no network was evaluated, and `batches` (n_tasks, n_runs). Each network
        is saved as it completes; Ctrl-C says what was saved and how to continue.
        `inspect(folder, arrays)`, when given, sees every network's arrays (e.g. to warn)."""
        done = {}
        try:
            for i, k in enumerate(self.n_tasks):
                for j, folder in enumerate(self.folders[k]):
                    name = os.path.basename(folder)
                    if folder in self.broken:
                        print(f"n_task={k:>3} {name}: skipped, broken ({self.broken[folder]})")
                        continue
                    t1, network = time.time(), checkpoints.fingerprint(folder)
                    arrays = self.partial.load(folder, network)
                    reused = arrays is not None
                    weights, kept = self.loaded.pop(folder, (None, None))  # held no longer than needed
                    if not reused:
                        net, encoder, config = (checkpoints.placed(kept, self.device, noise_free) if weights == network
                                                else checkpoints.load_network(folder, self.device, noise_free=noise_free))
                        arrays = {key: np.asarray(value) for key, value in measure(net, encoder, config, k).items()}
                        self.partial.save(folder, network, **arrays)
                    done[i, j] = arrays
                    if inspect is not None:
                        inspect(folder, arrays)
                    print(f"n_task={k:>3} {name}: {describe(arrays)} "
                          f"({'saved by an earlier run' if reused else f'{time.time() - t1:.1f} s'})")
        except KeyboardInterrupt:
            self._interrupted(len(done))
            raise
        if not done:
            raise checkpoints.BrokenRuns(self.broken, wrote=None)
        shape = (len(self.n_tasks), self.hp['n_runs'])
        first = next(iter(done.values()))
        stacked = {key: np.full(shape + value.shape, np.nan, dtype=value.dtype) for key, value in first.items()}
        for (i, j), arrays in done.items():
            for key, value in arrays.items():
                stacked[key][i, j] = value
        stacked['batches'] = np.full(shape, np.nan)  # batches each network was trained for
        for i, k in enumerate(self.n_tasks):
            for j, folder in enumerate(self.folders[k]):
                if self.batches.get(folder) is not None:
                    stacked['batches'][i, j] = self.batches[folder]
        return stacked

    def _interrupted(self, n_done):
        total = sum(len(f) for f in self.folders.values()) - len(self.broken)
        print(f"\ninterrupted: {n_done} of {total} networks evaluated; each is saved in "
              f"{self.partial.folder}/ and is not evaluated again. Continue with:\n  {self.command()}",
              file=sys.stderr)

    def command(self):
        """The command line that repeats this evaluation (the values that differ from
        the script's defaults)."""
        defaults = configurator.script_defaults(os.path.join(os.path.dirname(os.path.abspath(__file__)), self.script))
        changed = {k: v for k, v in self.hp.items() if k in defaults and v != defaults[k]}
        return configurator.command(self.script, changed)

    def summary(self, batches, **numbers):
        """The JSON beside a results file: the settings, the networks evaluated (with the
        batches each was trained for and the broken ones), then `numbers`."""
        return {'config': self.hp, 'networks': {str(k): self.folders[k] for k in self.n_tasks},
                'n_tasks': self.n_tasks, 'batches': results.listed(batches), 'broken': self.broken,
                **numbers, 'seconds': time.time() - self.t0}

    def write(self, stem, arrays, summary):
        """results/<name>.npz and .json."""
        results.save(stem + '.npz', arrays)
        results.save(stem + '.json', summary)

    def finish(self):
        """Broken runs: raise checkpoints.BrokenRuns once the rest is written (keeping the
        per-network files, so a rerun after retraining evaluates only those); otherwise
        remove the per-network files."""
        if self.broken:
            raise checkpoints.BrokenRuns(self.broken, wrote=self.stems[0] + '.npz')
        self.partial.clear()
