"""The machine a script runs on: its device, its CPU threads, its memory allocator
and the versions saved with every trained network."""
import ctypes
import os
import platform
import subprocess

import neurogym
import numpy as np
import threadpoolctl
import torch


def pick_device(device):
    """'auto' means cuda when available, else cpu; a cuda device that is not there
    is a clear error."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is not allowed: no CUDA device is available here "
                         "(use 'auto' or 'cpu')")
    return torch.device(device)


# the environment variables the BLAS and OpenMP libraries read when they load
_THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')


def set_threads(n_threads):
    """Use n_threads CPU threads for torch and for the BLAS / OpenMP pools of numpy,
    scipy and scikit-learn. These networks are small: one thread per process is the
    fastest way to share a machine (a default thread pool spins when two processes
    share the cores and both slow down ~10×: scikit-learn's logistic regressions of
    the abstraction metrics took 62 ms each instead of 6 with the BLAS pool left at the
    core count); more threads help a large ensemble on a quiet machine. Libraries
    loaded later read the environment variables set here."""
    torch.set_num_threads(n_threads)
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(n_threads)
    threadpoolctl.threadpool_limits(n_threads)  # the pools already loaded (numpy's, scipy's OpenBLAS, libgomp)


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse (Linux; nothing elsewhere). By default it
    hands tensors of a few MB back to the OS when they are freed, and the next training
    batch faults the same pages in again: hundreds to thousands of page faults per batch
    for a 25-member ensemble, ~10 % of an RNN's and more of an LSTM's batch time."""
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameter numbers (malloc.h)
    libc.mallopt(m_mmap_threshold, 32 << 20)  # allocations up to 32 MB from the heap ...
    libc.mallopt(m_trim_threshold, 1 << 30)  # ... which keeps up to 1 GB of free memory


def provenance():
    """Versions and git commit saved with every network."""
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        commit = ''
    return {'python': platform.python_version(), 'torch': str(torch.__version__),
            'numpy': np.__version__, 'neurogym': neurogym.__version__, 'git_commit': commit or None}
