"""Run the figure notebooks headless, without Jupyter: the code cells of each notebook
run in order in one fresh namespace, with the working directory set to Figures/.

    python Figures/run_notebooks.py                          # every notebook
    python Figures/run_notebooks.py fig3a fig5c              # some of them
    python Figures/run_notebooks.py --results_dir=paper_results --out_dir=/tmp/figs
    python Figures/run_notebooks.py fig4 --rnn_run=nTask12_run3   # any parameter of a notebook

Paths follow the rule of every script: relative to the current directory. results_dir,
analysis_dir and out_dir are results/, analysis/ and Figures/out/ there by default
(where generalize.py, sparsity.py and analyze.py write when run from the same place);
the absolute paths are printed. Every parameter of a notebook's parameters cell (the
code cell whose first line is `# parameters`) can be set with --name=value (a Python
literal, type-checked against the notebook's value); it replaces that value right
after the cell runs, in each notebook that has it. Exits with status 1 when a
notebook fails, naming the notebook and the cell, and 2 on a usage error.
"""
import difflib
import glob
import json
import os
import sys
import time
import traceback

FIGURES_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(FIGURES_DIR)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
import checks  # pure Python: --help and usage errors stay fast
import configurator

# the notebooks' input and output folders, relative to the current directory as for every script
PATHS = {'results_dir': 'results', 'analysis_dir': 'analysis', 'out_dir': os.path.join('Figures', 'out')}
PARAMETERS = '# parameters'  # first line of the parameters cell


class NotebookError(Exception):
    """A cell of a notebook raised; the message names the notebook and the cell."""


def notebook_paths(names=()):
    """Paths of the notebooks called `names` (with or without .ipynb, or paths);
    every notebook in Figures/ when empty."""
    if not names:
        return sorted(glob.glob(os.path.join(FIGURES_DIR, '*.ipynb')))
    paths = []
    for name in names:
        path = name if name.endswith('.ipynb') else name + '.ipynb'
        if not os.path.exists(path):
            path = os.path.join(FIGURES_DIR, os.path.basename(path))
        if not os.path.exists(path):
            known = ', '.join(os.path.basename(p)[:-6] for p in notebook_paths())
            raise ValueError(f'notebook {name!r} not found; available: {known}')
        paths.append(path)
    return paths


def code_cells(path):
    """(cell number counting from 1 over all cells, source) of each code cell."""
    with open(path) as f:
        nb = json.load(f)
    if nb.get('nbformat') != 4:
        raise ValueError(f'{path} is not an nbformat-4 notebook')
    return [(i, ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source'])
            for i, cell in enumerate(nb['cells'], 1) if cell['cell_type'] == 'code']


def parameters(path):
    """The parameters cell of a notebook: (its source, {name: value}), read without
    running it; ('', {}) when it has none."""
    for _, source in code_cells(path):
        if source.lstrip().startswith(PARAMETERS):
            return source, configurator.literal_defaults(source, path)
    return '', {}


def parse_overrides(items, paths):
    """{name: value} from --name=value items: the three paths (absolute, relative to
    the current directory, defaults PATHS) and any parameter of the notebooks in
    `paths`, each type-checked against the first of them that has it. ValueError for
    anything else."""
    known = {}
    for path in paths:
        for name, value in parameters(path)[1].items():
            known.setdefault(name, value)
    values = dict(PATHS)
    for item in items:
        name, has_value, text = item[2:].partition('=')
        if not item.startswith('--') or not name or not has_value:
            raise ValueError(f"cannot parse {item!r}: parameters are set with --name=value")
        if name not in known and name not in PATHS:
            close = difflib.get_close_matches(name, list(known))
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ''
            raise ValueError(f"unknown parameter {name!r}{hint} (the notebooks run have "
                             f"{', '.join(known)}; --help lists them)")
        value = configurator.parse_value(text)
        default = known.get(name, PATHS.get(name))
        if isinstance(default, str) and type(value) in (type(None), bool, int, float):
            value = text  # --rnn_run=2024 is the text, as for the scripts' str hyperparameters
        values[name] = configurator.check_type(name, value, default)
    for name in PATHS:
        values[name] = os.path.abspath(checks.folder(name, values[name]))
    check_values(values)
    return values


# values the notebooks share, with what they may be (the notebooks' own checks would only
# answer inside a cell, after the notebooks before it ran)
ALLOWED = {'protocol': ('correct', 'paper'), 'decoder': ('adam', 'lstsq', 'both')}


def check_values(values):
    """Usage errors before any notebook runs: an output folder that cannot be written,
    a protocol or decoder that is not one, an empty list or dict (task counts,
    durations, labels: a figure with nothing to draw)."""
    checks.writable('out_dir', values['out_dir'], keep=False)
    for name, value in values.items():
        if name in ALLOWED:
            checks.one_of(name, value, ALLOWED[name])
        elif isinstance(value, (list, tuple, dict)) and not value:
            checks.fail(name, value, 'a non-empty ' + ('dict' if isinstance(value, dict) else 'list'))


def print_help():
    print('usage: python Figures/run_notebooks.py [NOTEBOOK ...] [--name=value ...]\n')
    print(__doc__.strip())
    print('\nthe parameters of each notebook, with their values in the notebook '
          f"(the paths {', '.join(PATHS)} follow the rule above):")
    for path in notebook_paths():
        source = parameters(path)[0]
        print(f'  {os.path.basename(path)[:-6]}:')
        for line in source.strip().splitlines()[1:]:
            if not line.startswith(tuple(PATHS)):
                print(f'    {line}')


def run_notebook(path, overrides=None):
    """Execute one notebook; `overrides` ({name: value}) are set right after its
    parameters cell. Returns the namespace; raises NotebookError on failure."""
    overrides = overrides or {}
    name = os.path.basename(path)
    try:
        cells = code_cells(path)
    except (OSError, ValueError, KeyError) as e:  # json errors are ValueErrors
        raise NotebookError(f'{name}: cannot read the notebook: {e}') from e
    if overrides and not any(src.lstrip().startswith('# parameters') for _, src in cells):
        raise NotebookError(f'{name}: overrides given but no cell starts with "# parameters"')
    namespace = {'__name__': '__main__'}
    old_cwd = os.getcwd()
    os.chdir(os.path.dirname(os.path.abspath(path)))
    try:
        for number, source in cells:
            try:
                exec(compile(source, f'{name} cell {number}', 'exec'), namespace)
            except Exception as e:
                first = source.strip().splitlines()[0] if source.strip() else ''
                raise NotebookError(f'{name}, cell {number} ({first}): {type(e).__name__}: {e}') from e
            if source.lstrip().startswith('# parameters'):
                namespace.update(overrides)
    finally:
        os.chdir(old_cwd)
    return namespace


def main(argv=None):
    """Run the notebooks named on the command line (all by default) with the given
    parameters; returns the exit status: 0 when every notebook ran, 1 when one
    failed, 2 on a usage error."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if '--help' in argv or '-h' in argv:
        configurator.print_help(print_help)
        return 0
    try:
        paths = notebook_paths([a for a in argv if not a.startswith('-')])
        overrides = parse_overrides([a for a in argv if a.startswith('-')], paths)
    except (ValueError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    for name in PATHS:
        print(f'{name} = {overrides[name]}')
    failed = []
    for path in paths:
        t0 = time.time()
        print(f'--- {os.path.basename(path)}', flush=True)
        try:
            run_notebook(path, overrides)
        except NotebookError as e:
            traceback.print_exception(e.__cause__ or e, file=sys.stderr)
            print(f'FAILED {e}', file=sys.stderr)
            failed.append(str(e))
            continue
        print(f'ok ({time.time() - t0:.1f} s)', flush=True)
    if failed:
        print(f'{len(failed)} of {len(paths)} notebooks failed:\n' + '\n'.join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
