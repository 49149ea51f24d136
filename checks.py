"""The one validator of hyperparameter and argument values, used by every script and
library module. Each check raises ValueError naming the value and what is allowed,
e.g. "seed=-1 is not allowed: expected a non-negative integer". Pure Python (no
torch), so scripts can check their whole configuration before the slow imports."""
import math
import numbers
import os
import tempfile


def fail(name, value, expected):
    """Raise the project's one error message for a bad value."""
    raise ValueError(f"{name}={value!r} is not allowed: expected {expected}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def int_at_least(name, value, low, expected=None):
    """An integer >= low; returned as int."""
    if not _is_int(value) or value < low:
        fail(name, value, expected or f'an integer >= {low}')
    return int(value)


def positive_int(name, value):
    """An integer >= 1; returned as int."""
    return int_at_least(name, value, 1, 'a positive integer')


def non_negative_int(name, value):
    """An integer >= 0; returned as int."""
    return int_at_least(name, value, 0, 'a non-negative integer')


def positive(name, value):
    """A finite number > 0."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        fail(name, value, 'a finite number > 0')
    return value


def non_negative(name, value):
    """A finite number >= 0."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        fail(name, value, 'a finite number >= 0')
    return value


def finite(name, value):
    """A finite number."""
    if not _is_real(value) or not math.isfinite(value):
        fail(name, value, 'a finite number')
    return value


def open_interval(name, value, low=-1, high=1):
    """A number strictly between low and high."""
    if not _is_real(value) or not low < value < high:
        fail(name, value, f'a number in the open interval ({low}, {high})')
    return value


def one_of(name, value, allowed):
    """One of the allowed values."""
    if value not in allowed:
        fail(name, value, ' or '.join(repr(a) for a in allowed))
    return value


def positive_ints(name, values, distinct=True):
    """A non-empty list of positive integers (distinct unless told otherwise)."""
    if not isinstance(values, (list, tuple)) or not values or not all(
            _is_int(v) and v >= 1 for v in values) or (distinct and len(set(values)) != len(values)):
        fail(name, values, 'a non-empty list of ' + ('distinct ' if distinct else '') + 'positive integers')
    return [int(v) for v in values]


def dictionary(name, value):
    """A dict (of config values, for selections)."""
    if not isinstance(value, dict):
        fail(name, value, 'a dict')
    return value


def folder(name, value):
    """A non-empty folder path (output folders: '' would write into the current one unasked)."""
    if not isinstance(value, str) or not value.strip():
        fail(name, value, 'a non-empty folder path')
    return value


def _path_limit(path, which, fallback):
    """A limit of the file system that holds `path` (its nearest existing folder)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    try:
        return os.pathconf(path, which)
    except (OSError, ValueError, AttributeError):  # no such limit here, or no pathconf (Windows)
        return fallback


def fits_file_system(path):
    """True when every name in `path` and the whole path are within the file system's
    limits, so creating it cannot fail half-way with 'File name too long'."""
    path = os.path.abspath(path)
    name_max = _path_limit(path, 'PC_NAME_MAX', 255)
    return (len(os.fsencode(path)) < _path_limit(path, 'PC_PATH_MAX', 4096)
            and all(len(os.fsencode(part)) <= name_max for part in path.split(os.sep)))


def file_label(name, value):
    """A non-empty name for files inside an output folder: no path separators, so it
    cannot write outside that folder."""
    if not isinstance(value, str) or value.strip() in ('', '.', '..') or any(c in value for c in '/\\\0'):
        fail(name, value, 'a non-empty file name without path separators (/ or \\)')
    return value


def writable(name, folder, keep=True):
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


def available_memory():
    """Bytes of memory this machine can give a new allocation now (Linux: MemAvailable;
    elsewhere its physical memory), or None where that cannot be read."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (OSError, ValueError, AttributeError):
        return None


def fits_memory(name, value, n_bytes):
    """Refuse `value` of hyperparameter `name` when what it asks for (`n_bytes`, an
    estimate) exceeds the memory this machine has available now."""
    available = available_memory()
    if available is not None and n_bytes > available:
        raise ValueError(f'{name}={value!r} is too large: it needs about {n_bytes / 2**30:.3g} GiB of memory '
                         f'and this machine has {available / 2**30:.3g} GiB available; lower {name}')
    return value
