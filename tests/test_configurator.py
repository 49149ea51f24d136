import os
import shlex
import subprocess
import sys

import pytest

import configurator
from configurator import check_type, configure, parse_value

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A toy script: commented hyperparameters at the top, plus things that are not hyperparameters.
SCRIPT = '''"""Toy training script."""
import os
from math import sqrt
task = 'LinearClassificationCentOut'  # task family, or a list of families
n_task = 24  # tasks per family; a list trains one network per value
lr = 1e-3  # Adam learning rate
n_batch = 100000  # training batches
leaky = True  # leaky RNN
init = None  # weight init; None: default
timing = {'fixation': 100,
          'decision': 100}  # period durations (ms)
extra = {  # extra options
    'a': 1,
}
layers = [64, 64]  # hidden sizes
sizes = (1, 2)  # a tuple
network = 'RNN'  # 'RNN', 'LSTM' or 'gpt-2'
label = ''  # free text
_private = 3  # not a hyperparameter


def helper():
    return 1


class Thing:
    pass
'''
NAMES = ['task', 'n_task', 'lr', 'n_batch', 'leaky', 'init', 'timing', 'extra', 'layers',
         'sizes', 'network', 'label']
LISTS = ('task', 'n_task')


@pytest.fixture
def ns(tmp_path):
    """Globals of the toy script, run from a real file so that `__file__` points at its source."""
    path = tmp_path / 'toy_train.py'
    path.write_text(SCRIPT)
    namespace = {'__file__': str(path), '__name__': 'toy_train'}
    exec(compile(SCRIPT, str(path), 'exec'), namespace)
    return namespace


def run(ns, *argv, lists=LISTS, **kwargs):
    """Configure a copy of `ns`, so that each call starts from the script's defaults."""
    return configure(dict(ns), argv=list(argv), lists=lists, print_config=False, **kwargs)


def fails(capsys, ns, *argv, lists=LISTS):
    """Configure `ns` itself expecting exit status 2; return what was printed to stderr."""
    with pytest.raises(SystemExit) as exc:
        configure(ns, argv=list(argv), lists=lists, print_config=False)
    assert exc.value.code == 2
    return capsys.readouterr().err


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_hyperparameters_are_the_plain_literal_globals_in_order(ns):
    config = run(ns)
    assert list(config) == NAMES  # no modules, functions, classes, _private or dunder names
    assert config['timing'] == {'fixation': 100, 'decision': 100}
    assert config['init'] is None


def test_namespace_updated_in_place(ns):
    config = configure(ns, argv=['--lr=0.01', '--network=LSTM'], print_config=False)
    assert ns['lr'] == 0.01 and ns['network'] == 'LSTM'
    assert ns['n_task'] == 24  # untouched names keep their defaults
    assert config['lr'] == 0.01 and config['network'] == 'LSTM'


def test_argv_defaults_to_sys_argv(ns, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['toy_train.py', '--n_task=6'])
    assert configure(ns, lists=LISTS, print_config=False)['n_task'] == 6


@pytest.mark.parametrize('item, name, expected', [
    ('--layers=[1, 2]', 'layers', [1, 2]),
    ('--timing={"fixation": 50, "decision": 0}', 'timing', {'fixation': 50, 'decision': 0}),
    ('--init=None', 'init', None),
    ('--leaky=False', 'leaky', False),
    ('--n_batch=250', 'n_batch', 250),
    ('--lr=5e-4', 'lr', 5e-4),
    ('--lr=-2.5', 'lr', -2.5),
    ('--network=LSTM', 'network', 'LSTM'),  # unquoted string
    ("--network='gpt-2'", 'network', 'gpt-2'),  # quoted string
    ('--network=gpt-2', 'network', 'gpt-2'),
    ('--label=', 'label', ''),
    ('--label=two words', 'label', 'two words'),
])
def test_literal_parsing(ns, item, name, expected):
    value = run(ns, item)[name]
    assert value == expected and type(value) is type(expected)


def test_parse_value():
    assert parse_value('[1, 2]') == [1, 2]
    assert parse_value("{'a': None}") == {'a': None}
    assert parse_value('True') is True
    assert parse_value('1e5') == 1e5
    assert parse_value("'x'") == 'x'
    assert parse_value('LSTM') == 'LSTM'


def test_equals_sign_inside_value_is_kept(ns):
    assert run(ns, '--label=a=b')['label'] == 'a=b'
    assert run(ns, "--label='x==y'")['label'] == 'x==y'


def test_bare_number_or_none_for_str_default_is_the_text(ns):
    config = run(ns, '--label=2024', '--network=None')
    assert config['label'] == '2024' and config['network'] == 'None'


def test_int_promoted_to_float(ns):
    value = run(ns, '--lr=1')['lr']
    assert value == 1.0 and type(value) is float


def test_integral_float_converted_to_int(ns):
    value = run(ns, '--n_batch=1e5')['n_batch']
    assert value == 100000 and type(value) is int


@pytest.mark.parametrize('item, name, shown, expected', [
    ('--n_batch=1.5', 'n_batch', '1.5', 'an int'),
    ('--n_batch=True', 'n_batch', 'True', 'an int'),  # bool is not an int here
    ('--lr=True', 'lr', 'True', 'a float'),
    ('--leaky=1', 'leaky', '1', 'a bool'),  # nor an int a bool
    ('--lr=fast', 'lr', "'fast'", 'a float'),
    ('--n_batch=[1, 2]', 'n_batch', '[1, 2]', 'an int'),
    ('--timing=5', 'timing', '5', 'a dict'),
    ('--layers=5', 'layers', '5', 'a list'),
    ('--network=[1]', 'network', '[1]', 'a str'),
    ('--init={1, 2}', 'init', '{1, 2}', 'a plain literal'),  # a set is not a plain literal
])
def test_wrong_type_exits_2_naming_the_hyperparameter(capsys, ns, item, name, shown, expected):
    default = ns[name]
    err = fails(capsys, ns, item)
    assert f"'{name}'" in err and shown in err and expected in err
    assert ns[name] == default  # a failed call leaves the namespace alone


@pytest.mark.parametrize('item, shown', [
    ('--lr=1e999', 'inf'), ('--lr=-1e999', '-inf'), ('--lr=nan', "'nan'"), ('--lr=inf', "'inf'"),
    ('--lr=[1e999]', '[inf]'), ('--timing={"fixation": 1e999}', "{'fixation': inf}"),
    ('--n_task=[2, 1e999]', '[2, inf]'),
])
def test_infinite_and_nan_values_are_rejected_naming_the_hyperparameter(capsys, ns, item, shown):
    name = item[2:].split('=')[0]
    err = fails(capsys, ns, item)
    assert f"hyperparameter '{name}' must be finite; got {shown}" in err


def test_nan_text_stays_text_for_str_hyperparameters(ns):
    assert run(ns, '--label=nan')['label'] == 'nan'


def test_every_configuration_error_names_the_hyperparameter(capsys, ns, tmp_path):
    assert "'--lr'" in fails(capsys, ns, '--lr')  # no value
    config = write(tmp_path, 'c.py', 'lr = "fast"\n')
    err = fails(capsys, ns, config)
    assert "'lr'" in err and 'c.py:1' in err


@pytest.mark.parametrize('text, expected', [
    ('3', 3), ('2.5', 2.5), ('1e5', 100000), ('True', True), ("'he'", 'he'), ('he', 'he'),
    ('[1, "a"]', [1, 'a']), ('{"gain": 2}', {'gain': 2}), ('None', None),
])
def test_none_default_accepts_any_literal(ns, text, expected):
    assert run(ns, f'--init={text}')['init'] == expected


def test_lists_accepted_only_where_allowed(capsys, ns):
    assert run(ns, '--n_task=[2, 24]')['n_task'] == [2, 24]
    assert run(ns, '--n_task=(2, 24)')['n_task'] == [2, 24]  # tuple becomes a list
    assert run(ns, '--n_task=[2, 1e1]')['n_task'] == [2, 10]  # elements are converted too
    assert run(ns, "--task=['A', 'B']")['task'] == ['A', 'B']
    assert "'n_task'" in fails(capsys, ns, "--n_task=[2, 'x']")  # each element is checked
    assert "'n_task'" in fails(capsys, ns, '--n_task=[]')
    assert "'lr'" in fails(capsys, ns, '--lr=[1e-3, 1e-4]')  # lr is not in lists
    assert "'n_task'" in fails(capsys, ns, '--n_task=[2, 24]', lists=())


def test_list_tuple_and_dict_defaults(ns):
    assert run(ns, '--layers=(32,)')['layers'] == [32]
    assert run(ns, '--sizes=[3]')['sizes'] == (3,)
    assert run(ns, "--extra={'b': [1]}")['extra'] == {'b': [1]}


def test_check_type():
    assert check_type('lr', 1, 1e-3) == 1.0
    assert check_type('n_task', (2, 3), 24, allow_list=True) == [2, 3]
    with pytest.raises(ValueError, match="'n_task'"):
        check_type('n_task', [2, 3], 24)
    with pytest.raises(ValueError, match="'leaky'"):
        check_type('leaky', 0, True)


def test_unknown_name_on_command_line_suggests_closest(capsys, ns):
    err = fails(capsys, ns, '--n_tsk=3')
    assert "unknown hyperparameter 'n_tsk'; did you mean 'n_task'" in err
    assert 'did you mean' not in fails(capsys, ns, '--zzzzzz=1')


def test_unknown_name_in_config_file_suggests_closest(capsys, ns, tmp_path):
    path = write(tmp_path, 'cfg.py', '# a config\nn_tsk = 3\n')
    err = fails(capsys, ns, path)
    assert f'{path}:2' in err and "unknown hyperparameter 'n_tsk'; did you mean 'n_task'" in err


def test_overrides_applied_left_to_right(ns, tmp_path):
    path = write(tmp_path, 'cfg.py', "# small run\nlr = 1  # promoted\nnetwork = 'LSTM'\n"
                                     "timing = {'fixation': 0,\n          'decision': 1}\n")
    config = run(ns, path, '--lr=0.5')  # file then flag: the flag wins
    assert config['lr'] == 0.5 and config['network'] == 'LSTM'
    assert config['timing'] == {'fixation': 0, 'decision': 1}
    config = run(ns, '--lr=0.5', '--network=RNN', path)  # flag then file: the file wins
    assert config['lr'] == 1.0 and type(config['lr']) is float and config['network'] == 'LSTM'


def test_config_file_values_are_type_checked(capsys, ns, tmp_path):
    path = write(tmp_path, 'cfg.py', 'lr = 1e-2\nleaky = 1\n')
    err = fails(capsys, ns, path)
    assert f'{path}:2' in err and "'leaky'" in err and 'a bool' in err


@pytest.mark.parametrize('text, line', [
    ("lr = 1e-2\nopen('executed', 'w').close()\n", 2),  # a call is not an assignment
    ('import os\n', 1),
    ('lr = 1e-3 * 2\n', 1),  # not a literal
    ('lr = n_batch = 1\n', 1),
    ('lr, n_batch = 1, 2\n', 1),
    ('"""docstring"""\n', 1),
    ('lr = (\n', 1),  # syntax error
])
def test_config_file_statements_other_than_assignments_rejected(capsys, ns, tmp_path, monkeypatch,
                                                                 text, line):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, 'cfg.py', text)
    err = fails(capsys, ns, path)
    assert f'{path}:{line}' in err
    assert not (tmp_path / 'executed').exists()  # the file was parsed, never run


def test_missing_config_file_exits_2(capsys, ns, tmp_path):
    err = fails(capsys, ns, str(tmp_path / 'nope.py'))
    assert 'nope.py' in err
    assert '--name=value' in fails(capsys, ns, 'lr=1')  # a forgotten -- gets a hint


def test_space_form_rejected(capsys, ns):
    err = fails(capsys, ns, '--lr', '0.1')
    assert "'--lr'" in err and 'space form' in err and '--lr=value' in err
    assert ns['lr'] == 1e-3
    assert '--name=value' in fails(capsys, ns, '-x')


@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_help_lists_names_defaults_and_comments(capsys, ns, flag):
    with pytest.raises(SystemExit) as exc:
        run(ns, '--n_tsk=1', flag, doc='Train the toy network.')  # help wins over bad items
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith('usage: python toy_train.py')
    assert 'Train the toy network.' in out
    lines = {line.split(' = ')[0].strip(): line for line in out.splitlines() if ' = ' in line}
    assert set(lines) == set(NAMES)
    assert "'LinearClassificationCentOut'" in lines['task'] and 'task family, or a list' in lines['task']
    assert '0.001' in lines['lr'] and '# Adam learning rate' in lines['lr']
    assert '100000' in lines['n_batch'] and 'training batches' in lines['n_batch']
    assert 'None' in lines['init'] and 'weight init; None: default' in lines['init']
    assert "'gpt-2'" in lines['network']  # quotes inside the comment survive
    assert 'period durations (ms)' in lines['timing']  # comment on the closing line
    assert 'extra options' in lines['extra']  # comment on the opening line
    assert 'not a hyperparameter' not in out and 'helper' not in out


def test_help_without_source_file_still_lists_names(capsys):
    with pytest.raises(SystemExit) as exc:
        configure({'lr': 0.1, 'n_layer': 2}, argv=['-h'])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert 'lr = 0.1' in out and 'n_layer = 2' in out


def test_prints_resolved_config_marking_overrides(capsys, ns):
    configure(dict(ns), argv=['--lr=0.01', '--n_task=[2, 3]'], lists=LISTS)
    lines = capsys.readouterr().out.splitlines()
    assert 'lr = 0.01  # overridden' in lines
    assert 'n_task = [2, 3]  # overridden' in lines
    assert 'n_batch = 100000' in lines
    assert "network = 'RNN'" in lines
    assert len(lines) == len(NAMES)
    run(ns, '--lr=0.02')
    assert capsys.readouterr().out == ''  # print_config=False prints nothing


def test_lists_must_name_hyperparameters(ns):
    with pytest.raises(ValueError, match="'n_tasks'"):
        run(ns, lists=('n_tasks',))
    with pytest.raises(ValueError, match='lists'):
        run(ns, lists='task')


# ---- positional words (python sweep.py fig3a fig3b --runs=1) ----

def sweep_ns(tmp_path):
    path = tmp_path / 'toy_sweep.py'
    path.write_text('figures = []  # figures to make (bare words)\nruns = 5  # runs\n')
    namespace = {'__file__': str(path)}
    exec(compile(path.read_text(), str(path), 'exec'), namespace)
    return namespace


def test_positional_words_fill_the_named_list(tmp_path, monkeypatch):
    ns = sweep_ns(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'small.py').write_text('runs = 2\n')
    config = configure(dict(ns), argv=['fig3a', 'small.py', 'fig3b', '--runs=3'], positional='figures',
                       print_config=False)
    assert config['figures'] == ['fig3a', 'fig3b']  # an existing .py file is still a config file
    assert config['runs'] == 3
    assert configure(dict(ns), argv=['--runs=1'], positional='figures', print_config=False)['figures'] == []
    assert configure(dict(ns), argv=['--figures=["S1"]'], positional='figures', print_config=False)['figures'] == ['S1']


def test_positional_words_and_flag_together_rejected(capsys, tmp_path):
    ns = sweep_ns(tmp_path)
    with pytest.raises(SystemExit) as exc:
        configure(ns, argv=['fig3a', '--figures=["S1"]'], positional='figures', print_config=False)
    assert exc.value.code == 2
    assert 'not both' in capsys.readouterr().err


def test_without_positional_bare_words_are_config_files(capsys, tmp_path):
    ns = sweep_ns(tmp_path)
    with pytest.raises(SystemExit) as exc:
        configure(ns, argv=['fig3a'], print_config=False)
    assert exc.value.code == 2
    assert 'cannot read config file' in capsys.readouterr().err


def test_positional_must_name_a_list_hyperparameter(tmp_path, capsys):
    ns = sweep_ns(tmp_path)
    for name in ('runs', 'nothing'):
        with pytest.raises(ValueError, match='positional'):
            configure(dict(ns), argv=[], positional=name, print_config=False)
    with pytest.raises(SystemExit):
        configure(dict(ns), argv=['-h'], positional='figures')
    assert capsys.readouterr().out.startswith('usage: python toy_sweep.py [CONFIG.py ...] [FIGURES ...] [--name=value ...]')


# ---------------------------------------------------------------------------------
# Command lines written back out: what configure() reads back is what was rendered

@pytest.mark.parametrize('default, value', [
    (3, 7), (1e-3, 2.5e-4), (True, False), (None, None), (None, 'LSTM'), ('x', '1e5'), ('x', 'True'),
    ('x', "it's"), ('x', 'a b'), ([1], [2, 3]), ({'a': 1}, {'fixation': 100, 'stimulus': 500}),
    (None, {'network': 'LSTM', 'n_task': [2, 3]}), (['a'], ['LinearClassificationCentOut', 'x y']),
    ('x', 'trained_networks/RNN'),
])
def test_rendered_flags_parse_back_to_their_values(default, value):
    flag = configurator.flag('h', value)
    assert configure({'h': default}, argv=[flag], print_config=False)['h'] == value
    # and through the shell, as the commands we print are typed
    argv = shlex.split(configurator.command('train.py', {'h': value}))
    assert argv[:2] == ['python', 'train.py'] and configure({'h': default}, argv=argv[2:], print_config=False)['h'] == value


def test_lists_render_without_spaces_so_they_need_no_quotes():
    assert configurator.flags({'n_task': [2, 3, 24], 'runs': 5, 'network': 'LSTM'}) == \
        ['--n_task=[2,3,24]', '--runs=5', '--network=LSTM']
    assert configurator.command('generalize.py', {'select': {'network': 'LSTM'}, 'n_tasks': [2, 24]}) == \
        "python generalize.py --select=\"{'network': 'LSTM'}\" --n_tasks=[2,24]"


def test_check_only_mode_validates_and_runs_nothing(tmp_path):
    script = tmp_path / 'toy.py'
    script.write_text("n = 1  # a count\nimport checks\nimport configurator\n\n\ndef check(hp):\n"
                      "    checks.positive_int('n', hp['n'])\n\n\n"
                      "configurator.configure(globals(), check=check)\nprint('the script ran')\n")
    env = {**os.environ, configurator.CHECK_ONLY: '1', 'PYTHONPATH': REPO}
    def run(*argv):
        return subprocess.run([sys.executable, str(script), *argv], env=env, capture_output=True, text=True)
    ok = run('--n=3')
    assert ok.returncode == 0 and ok.stdout == '' and ok.stderr == ''  # checked, not run, nothing printed
    for argv, message in ((['--n=0'], 'n=0 is not allowed'), (['--m=1'], "unknown hyperparameter 'm'")):
        bad = run(*argv)
        assert bad.returncode == 2 and message in bad.stderr
    assert 'the script ran' in subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                              env={**os.environ, 'PYTHONPATH': REPO}).stdout
