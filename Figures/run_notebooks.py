"""Run the figure notebooks headless, without Jupyter: the code cells of each notebook
run in order in one fresh namespace, with the working directory set to Figures/.

    python Figures/run_notebooks.py                          # every notebook
    python Figures/run_notebooks.py fig3a fig5c              # some of them
    python Figures/run_notebooks.py --results_dir=paper_results --out_dir=/tmp/figs

--results_dir, --analysis_dir and --out_dir replace the values set in each notebook's
parameters cell (the code cell whose first line is `# parameters`) right after that
cell runs; relative paths are taken from where you run this command. Exits with
status 1 when a notebook fails, naming the notebook and the cell.
"""
import argparse
import glob
import json
import os
import sys
import time
import traceback

FIGURES_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(FIGURES_DIR)
ROOT_VARIABLE = 'FIGURES_REPO_ROOT'  # the notebooks' setup cell reads the repo root from it
OVERRIDABLE = ('results_dir', 'analysis_dir', 'out_dir')


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
    old_cwd, old_root = os.getcwd(), os.environ.get(ROOT_VARIABLE)
    os.chdir(os.path.dirname(os.path.abspath(path)))
    os.environ[ROOT_VARIABLE] = REPO_ROOT
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
        if old_root is None:
            os.environ.pop(ROOT_VARIABLE, None)
        else:
            os.environ[ROOT_VARIABLE] = old_root
    return namespace


def main(argv=None):
    """Run the notebooks named on the command line (all by default); returns the
    exit status: 0 when every notebook ran, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('notebooks', nargs='*', help='notebook names (default: all in Figures/)')
    for key in OVERRIDABLE:
        parser.add_argument(f'--{key}', help=f"replaces the notebooks' {key}")
    args = parser.parse_args(argv)
    overrides = {k: os.path.abspath(getattr(args, k)) for k in OVERRIDABLE if getattr(args, k) is not None}
    try:
        paths = notebook_paths(args.notebooks)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
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
