"""What the keys of a trained network's config mean: which only say how or where it
was trained (never what it learns), which place it in its sweep, and what runs saved
before a hyperparameter existed were trained with. Torch-free: the sweep planner
reads it as well as the checkpoint code."""

# how and where a network was trained: never part of its name or a difference between networks
BOOKKEEPING = frozenset({'out_dir', 'device', 'n_threads', 'data_threads', 'cuda_graph', 'resume', 'ckpt_every',
                         'python', 'torch', 'numpy', 'neurogym', 'git_commit'})
# a network's place in its sweep: the networks of one curve differ in these
SWEEP_KEYS = frozenset({'n_task', 'run', 'runs', 'seed', 'member_seed', 'name'})
# left out of folder names (n_task and run end every name; a non-default seed stays in it)
NAME_SKIP = BOOKKEEPING | {'n_task', 'run', 'runs'}
# hyperparameters added after runs were saved, with the value those runs were trained with
EARLIER_DEFAULTS = {'loss': 'logits', 'dropout': 0.1, 'enc_hidden': 100, 'enc_out': 40}
