"""Typed hyperparameter overrides for the flat scripts (like nanoGPT's configurator, but strict).

A script keeps its hyperparameters as commented module-level variables and calls

    config = configure(globals(), lists=('task', 'n_task'))

so that `python train.py config/small.py --lr=3e-4 --n_task=[2,24]` applies the config
file, then the flag, checks each value against the type of its default and prints the
resolved values. `--help` lists every hyperparameter with its default and comment.
Config files hold only `name = literal` lines; they are parsed, never executed.
"""

import ast
import difflib
import io
import math
import os
import re
import shlex
import sys
import tokenize

# set in a script's environment: configure() checks the values (config files, flags and
# the script's own check) and exits 0 without running the script (sweep.py's planning)
CHECK_ONLY = 'CONFIGURE_CHECK_ONLY'

_LITERAL_TYPES = (type(None), bool, int, float, str, list, tuple, dict)
_EXPECTED = {
    bool: 'a bool (True or False)',
    int: 'an int (or an integral float such as 1e5)',
    float: 'a float (or an int)',
    str: 'a str',
    list: 'a list (or tuple)',
    tuple: 'a tuple (or list)',
    dict: 'a dict',
}


def _is_literal(value):
    """True for values that are plain Python literals, containers included."""
    if type(value) not in _LITERAL_TYPES:
        return False
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_is_literal(k) and _is_literal(v) for k, v in value.items())
    return True


def parse_value(text):
    """Parse a command-line value as a Python literal, or keep the raw string (`--network=LSTM`)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def _convert(value, default):
    """Return `value` converted to the type of `default`; raise TypeError if it does not fit."""
    kind = type(default)
    if not _is_literal(value):
        raise TypeError
    if default is None:
        # a None default says nothing of the type; an integral float is the int it spells
        # (--n_batch=1e5 is the README's way of writing 100000 batches)
        return int(value) if type(value) is float and value.is_integer() else value
    if type(value) is kind:
        return value
    # bool is a subclass of int, so these exact-type tests keep True out of numbers and 1 out of bools
    if kind is float and type(value) is int:
        return float(value)
    if kind is int and type(value) is float and value.is_integer():
        return int(value)
    if kind in (list, tuple) and type(value) in (list, tuple):
        return kind(value)
    raise TypeError


def _finite(value):
    """False if value is, or contains, an infinite or NaN float; None for the text
    of one ('nan', 'inf')."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str) and value.strip().lower().lstrip('+-') in ('nan', 'inf', 'infinity'):
        return None
    if isinstance(value, (list, tuple)):
        return all(_finite(v) is not False for v in value)
    if isinstance(value, dict):
        return all(_finite(v) is not False for v in (*value, *value.values()))
    return True


def check_type(name, value, default, allow_list=False):
    """Return `value` converted to the type of `default`; raise ValueError naming `name` if it doesn't fit.

    With `allow_list`, a non-empty list (or tuple) of values that each fit is accepted too, as a list.
    """
    scalar_default = type(default) not in (list, tuple)
    # 1e999 parses as inf, and --lr=nan arrives as the text 'nan': never meaningful settings
    finite = _finite(value)
    if finite is False or (finite is None and type(default) is float):
        raise ValueError(f"hyperparameter {name!r} must be finite; got {value!r}")
    try:
        if allow_list and scalar_default and type(value) in (list, tuple):
            if not value:
                raise TypeError
            return [_convert(v, default) for v in value]
        return _convert(value, default)
    except TypeError:
        if default is None:
            expected = 'a plain literal (None, bool, int, float, str, list, tuple or dict)'
        else:
            expected = _EXPECTED[type(default)]
            if allow_list and scalar_default:
                expected += ', or a non-empty list of them'
        raise ValueError(f"hyperparameter {name!r} expects {expected}; "
                         f"got {value!r} ({type(value).__name__})") from None


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _read_comments(path):
    """Map each name assigned at the top level of a source file to its assignment's trailing comment."""
    try:
        with tokenize.open(path) as f:
            source = f.read()
        line_comment = {tok.start[0]: tok.string.lstrip('#').strip()
                        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                        if tok.type == tokenize.COMMENT}
        body = ast.parse(source).body
    except (OSError, SyntaxError, tokenize.TokenError, UnicodeDecodeError):
        return {}  # no readable source (interactive session, notebook): help shows no comments
    comments = {}
    for stmt in body:
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        else:
            continue
        # a multi-line literal carries its comment on the closing line or on the opening line
        comment = line_comment.get(stmt.end_lineno) or line_comment.get(stmt.lineno)
        for target in targets:
            # the first commented assignment is the definition; later ones (after configure) are not
            if isinstance(target, ast.Name) and comment and target.id not in comments:
                comments[target.id] = comment
    return comments


def _print_help(namespace, defaults, doc, positional=None):
    script = os.path.basename(namespace.get('__file__') or sys.argv[0] or 'script.py')
    words = f" [{positional.upper()} ...]" if positional else ''
    print(f"usage: python {script} [CONFIG.py ...]{words} [--name=value ...]")
    if doc:
        print()
        print(doc.strip())
    print()
    print("hyperparameters with their defaults (config files and flags apply left to right):")
    comments = _read_comments(namespace['__file__']) if namespace.get('__file__') else {}
    lines = [f"  {name} = {value!r}" for name, value in defaults.items()]
    width = max((len(line) for line in lines if len(line) <= 48), default=0)  # long defaults stick out
    for line, name in zip(lines, defaults):
        comment = comments.get(name)
        print(f"{line.ljust(width)}  # {comment}" if comment else line)


def print_help(write, *args):
    """Call write(*args), which prints a help text; a reader that leaves early
    (`--help | head`) is not an error."""
    try:
        write(*args)
        sys.stdout.flush()
    except BrokenPipeError:
        # point stdout at devnull so that the flush at exit does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _read_config(path):
    """Return (line, name, value) for each `name = literal` line of a config file, parsed without exec."""
    try:
        with open(path, encoding='utf-8') as f:
            source = f.read()
    except (OSError, UnicodeDecodeError) as e:
        _fail(f"cannot read config file {path!r} ({e}); overrides are written --name=value")
    try:
        body = ast.parse(source, filename=path).body
    except SyntaxError as e:
        _fail(f"{path}:{e.lineno}: syntax error in config file: {e.msg}")
    lines = source.splitlines()
    assignments = []
    for stmt in body:
        text = lines[stmt.lineno - 1].strip()
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            _fail(f"{path}:{stmt.lineno}: config files may only contain `name = literal` lines "
                  f"and comments; got {text!r}")
        try:
            value = ast.literal_eval(stmt.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            _fail(f"{path}:{stmt.lineno}: the value of {stmt.targets[0].id!r} "
                  f"is not a Python literal: {text!r}")
        assignments.append((stmt.lineno, stmt.targets[0].id, value))
    return assignments


def script_defaults(path):
    """The hyperparameters of a script with their default values, read from its
    source (the `name = literal` lines at its top, before its first other statement)
    without running or importing it. Lets a library module know a script's defaults
    (e.g. the training defaults for the paper's checkpoints) from their one source."""
    with open(path, encoding='utf-8') as f:
        return literal_defaults(f.read(), path)


def literal_defaults(source, filename='<source>'):
    """{name: value} of the `name = literal` lines at the top of Python source (after
    an optional docstring, up to the first other statement), without running it
    (a script's header, a notebook's parameters cell)."""
    body = ast.parse(source, filename=filename).body
    defaults = {}
    for stmt in body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # the docstring
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            break
        try:
            defaults[stmt.targets[0].id] = ast.literal_eval(stmt.value)
        except ValueError:
            break
    return defaults


def hyperparameters(namespace):
    """The hyperparameters of a script namespace with their current values: names not
    starting with '_' whose values are plain literals, in definition order."""
    return {name: value for name, value in namespace.items()
            if not name.startswith('_') and _is_literal(value)}


def configure(namespace, argv=None, lists=(), doc=None, print_config=True, positional=None, check=None,
              resolve=None):
    """Apply config files and --name=value overrides from `argv` to the hyperparameters in `namespace`.

    Hyperparameters are the names in `namespace` (a module's globals) not starting with '_'
    whose values are plain literals. Returns {name: resolved value} in definition order and
    updates `namespace` in place. Bad overrides print an error and exit with status 2;
    --help / -h prints every hyperparameter with its default and comment and exits with 0.
    `positional` names a list hyperparameter that collects the bare words of argv that are
    not existing .py files (`python sweep.py fig3a fig3b`); without it every bare word is a
    config file. `check(values)` may raise ValueError for impossible values: the message
    is printed and the program exits with status 2, before the resolved values are printed.
    `resolve(values)` returns them with defaults that depend on other values filled in
    (train.py's n_batch=None: the network type's budget), so the values printed, set
    and returned are the ones the run uses.
    """
    if not isinstance(namespace, dict):
        raise ValueError(f"namespace must be a dict such as globals(); got {type(namespace).__name__}")
    if isinstance(lists, str) or isinstance(argv, str):
        raise ValueError("lists and argv must be sequences of strings, not a single string")
    defaults = hyperparameters(namespace)
    lists = set(lists)
    unknown = sorted(lists - set(defaults))
    if unknown:
        raise ValueError(f"lists names {', '.join(map(repr, unknown))}, which are not hyperparameters; "
                         f"known: {', '.join(defaults)}")
    if positional is not None and not isinstance(defaults.get(positional), list):
        raise ValueError(f"positional={positional!r} must name a hyperparameter whose default is a list")
    argv = sys.argv[1:] if argv is None else list(argv)
    if namespace.get('__name__') == '__main__':  # a script, not a test or an importer
        sys.excepthook = _quiet_interrupt

    if '--help' in argv or '-h' in argv:
        print_help(_print_help, namespace, defaults, doc, positional)
        raise SystemExit(0)

    values = dict(defaults)
    overridden = set()
    words = []  # the bare words collected for `positional`

    def override(name, value, where):
        if name not in defaults:
            matches = difflib.get_close_matches(name, list(defaults))
            hint = f"; did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ''
            _fail(f"{where}unknown hyperparameter {name!r}{hint} (--help lists them all)")
        try:
            values[name] = check_type(name, value, defaults[name], allow_list=name in lists)
        except ValueError as e:
            _fail(f"{where}{e}")
        overridden.add(name)

    for item in argv:
        if item.startswith('--'):
            name, has_value, text = item[2:].partition('=')
            if not name:
                _fail(f"cannot parse {item!r}: overrides are written --name=value")
            if not has_value:
                _fail(f"{item!r} has no value: write {item}=value "
                      f"(the space form '{item} value' is not supported)")
            value = parse_value(text)
            # a bare number, bool or None given for a str default (--out_dir=2024) means the text itself
            if isinstance(defaults.get(name), str) and type(value) in (type(None), bool, int, float):
                value = text
            override(name, value, where='')
        elif item.startswith('-'):
            _fail(f"unknown option {item!r}; overrides are written --name=value, -h shows help")
        elif positional is not None and not (item.endswith('.py') and os.path.isfile(item)):
            words.append(item)
        else:
            for line, name, value in _read_config(item):
                override(name, value, where=f"{item}:{line}: ")
    if words:
        if positional in overridden:
            _fail(f"give {positional} either as bare words or as --{positional}=[...], not both")
        override(positional, words, where='')

    if check is not None:
        try:
            check(dict(values))
        except ValueError as e:
            _fail(str(e))
    if os.environ.get(CHECK_ONLY):
        raise SystemExit(0)
    if resolve is not None:
        values = resolve(dict(values))
    namespace.update(values)
    if print_config:
        for name, value in values.items():
            print(f"{name} = {value!r}" + ("  # overridden" if name in overridden else ''))
    return dict(values)


# ---------------------------------------------------------------------------------
# Command lines written back out: the one renderer of what configure() parses

def flag(name, value):
    """--name=value that configure() reads back as `value` (lists without spaces, so
    that they need no quoting; a str that would parse as another literal is quoted)."""
    if isinstance(value, str):
        text = value if parse_value(value) == value else repr(value)
    elif isinstance(value, (list, tuple)) and all(type(v) in (int, float, str, bool) for v in value):
        text = '[' + ','.join(repr(v) for v in value) + ']'
    else:
        text = repr(value)
    return f'--{name}={text}'


def flags(values):
    """[--name=value, ...] of {name: value}, in its order."""
    return [flag(name, value) for name, value in values.items()]


_SAFE = re.compile(r'[\w@%+=:,./\[\]-]+')


def shell(argv):
    """A script's argv as one would type it: `python train.py --select="{'network': 'LSTM'}"`."""
    words = ['python']
    for arg in argv:
        name, eq, value = arg.partition('=')
        if _SAFE.fullmatch(arg):
            words.append(arg)
        elif arg.startswith('--') and eq and not re.search(r'["$`\\!]', value):
            words.append(f'{name}="{value}"')
        else:
            words.append(shlex.quote(arg))
    return ' '.join(words)


def command(script, values):
    """The shell command that runs `script` with the hyperparameters {name: value}."""
    return shell([script] + flags(values))


def _quiet_interrupt(kind, value, traceback):
    """A script's sys.excepthook: Ctrl-C that no handler caught, i.e. while the slow
    imports after configure() run (run() and sweep.py catch it during the work), is one
    line, not a traceback; the exit status stays that of SIGINT."""
    if issubclass(kind, KeyboardInterrupt):
        print('\ninterrupted while starting: nothing was done', file=sys.stderr)
    else:
        sys.__excepthook__(kind, value, traceback)


def run(main, config):
    """A script's entry point: call main(config). Expected failures (impossible
    values, missing or corrupt files, unwritable outputs, a non-finite loss) end the
    program with `error: ...` and status 1 instead of a traceback; an interrupt (whose
    handler has said what was saved) with status 130, as shells expect."""
    try:
        return main(config)
    except (ValueError, OSError, FloatingPointError) as e:  # FileNotFoundError, FileExistsError are OSErrors
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit(130)
