"""util: the machine a script runs on."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# every thread pool's size after set_threads(1): those loaded before it (numpy's OpenBLAS, torch's
# OpenMP) and those loaded after it (scipy's OpenBLAS and scikit-learn's OpenMP, through the environment)
_PROBE = """
import json, util
util.set_threads(1)
import scipy.linalg, sklearn.linear_model, threadpoolctl
print(json.dumps([[p['internal_api'], p['filepath'], p['num_threads']] for p in threadpoolctl.threadpool_info()]))
"""


def test_set_threads_caps_every_blas_and_openmp_pool():
    # oversubscribed pools cost ~10x in scikit-learn's logistic regressions of the abstraction
    # metrics on a busy machine; a pool left at the core count would show here as > 1
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')}
    out = subprocess.run([sys.executable, '-c', _PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    pools = json.loads(out.stdout.strip().splitlines()[-1])
    assert {api for api, _, _ in pools} >= {'openblas', 'openmp'}
    assert all(n == 1 for _, _, n in pools), pools
