"""benchmarks/bench_release.py, the harness that times the paper's code release: it
refuses a missing checkout in one line before any work, and runs a train.py's loop for
exactly the warm-up and timed batches, saving only into a temporary folder. No release
code here: the 'release' below is a stand-in with the same loop line."""
import os
import subprocess
import sys
import textwrap

import pytest
from test_reliability import PROBE  # runs a script, prints its exit status and what it imported

pytestmark = pytest.mark.slow  # starts processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, 'benchmarks', 'bench_release.py')


def bench(*args, cwd=ROOT):
    return subprocess.run([sys.executable, BENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('args', [[], ['--release_dir=/no/such/folder'], ['--release_dir=' + ROOT + '/docs']])
def test_a_missing_release_checkout_is_one_line_before_any_work(args):
    proc = subprocess.run([sys.executable, '-c', PROBE.format(path=BENCH, args=args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == 'STATUS 2 False False', proc.stdout + proc.stderr  # no torch, no matplotlib
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: release_dir'), proc.stderr


STAND_IN = '''
import os
import tasks
n_batch = 1e5
done = []
for i in range(int(n_batch)):
    done.append(i)
print('batches', done[0], done[-1], len(done))
print('step returns', len(tasks.Env()._step(0)))
with open(os.path.join('..', 'trained_networks', 'net.pth'), 'w') as f:
    f.write('saved')
'''


def test_the_loop_runs_warmup_plus_timed_batches_and_saves_in_a_temporary_folder(tmp_path):
    release = tmp_path / 'release'
    release.mkdir()
    (release / 'train.py').write_text(STAND_IN)
    # an old-gym task: _step returns 4 values, neurogym 2.x unpacks 5
    (release / 'tasks.py').write_text(textwrap.dedent('''
        class Env:
            def _step(self, action):
                return 'ob', 0, False, {}
    '''))
    proc = bench(f'--release_dir={release}', '--n_warmup=3', '--n_batch=7', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'batches 0 9 10' in proc.stderr and 'step returns 5' in proc.stderr  # its prints go to stderr
    result = [line for line in proc.stdout.splitlines() if line.startswith('RESULT')]
    assert len(result) == 1 and result[0].startswith('RESULT release RNN: 1 network ') and 'per CPU-second' in result[0]
    assert sorted(os.listdir(tmp_path)) == ['release'] and sorted(os.listdir(release)) == ['tasks.py', 'train.py']


def test_a_train_py_without_the_release_loop_is_refused(tmp_path):
    (tmp_path / 'train.py').write_text('n_batch = 1e5\nfor i in range(10):\n    pass\n')
    proc = bench(f'--release_dir={tmp_path}')
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr.count('\n') == 1 and 'not the release this harness runs' in proc.stderr
