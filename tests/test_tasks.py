import io
import itertools
import json
import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from scipy import stats
from scipy.special import ndtri

import tasks
import train

N = 2000  # trials per statistical check
ALL = sorted(tasks.TASKS)
# a timing with every period non-empty, so the layout of each period can be checked
TIMING = {"fixation": 200, "stimulus": 500, "delay": 300, "decision": 200}


def draw(env, n=N, seed=0):
    return env.sample(np.random.default_rng(seed), n)


def decision(env, gt):
    return gt[:, env.start_step["decision"] : env.end_step["decision"]]


def stim_residual(env, s):
    """Noise of the stimulus channels during the stimulus steps, (n, steps, D)."""
    a, b = env.stim_steps
    return s["ob"][:, a:b, env.stim_channels].astype(float) - s["stim"][:, None, :]


def check_decision_targets(env, s, expected):
    dec = decision(env, s["gt"])
    assert np.array_equal(dec, np.broadcast_to(expected[:, None, :], dec.shape).astype(np.float32))
    assert np.array_equal(s["ground_truth"], expected)


# -----------------------------------------------------------------------------
# targets against the latents


def test_two_afc_and_attribute_integration_labels():
    env = tasks.TwoAlternativeForcedChoiceCent()
    s = draw(env)
    x = s["stim"]
    assert x.min() >= -0.5 and x.max() < 0.5
    check_decision_targets(env, s, np.where(x[:, 1] > x[:, 0], 1.0, -1.0)[:, None])
    env = tasks.AttributeIntegrationCent()
    s = draw(env)
    check_decision_targets(env, s, np.where(s["stim"].sum(1) > 0, 1.0, -1.0)[:, None])
    assert np.array_equal(env.rule_vec, [1.0]) and np.all(s["ob"][:, :, 3] == 1)


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (tasks.LinearClassificationCentOut, {}),
        (tasks.LinearClassificationCentOut, {"dist": "gumbel"}),
        (tasks.LinearClassificationAnisot, {}),
        (tasks.LinearClassificationAutocorr, {}),
        (tasks.LinearClassificationCorr, {}),
    ],
)
def test_line_labels(cls, kwargs):
    env = cls(n_task=6, **kwargs)
    s = draw(env)
    x = s["stim"]
    phi = (np.arange(6) + 0.5) * np.pi / 6
    # x2 > tan(phi) x1, written with cos/sin so it does not reuse the task's formula
    above = (x[:, 1:2] * np.cos(phi) - x[:, 0:1] * np.sin(phi)) * np.sign(np.cos(phi)) > 0
    check_decision_targets(env, s, np.where(above, 1.0, -1.0))
    assert 0.3 < (s["ground_truth"] > 0).mean() < 0.7


def test_high_dim_labels_and_normals():
    env = tasks.LinearClassificationHighDim(n_task=7, n_dim=5, boundary_seed=3)
    assert env.normals.shape == (7, 5)
    assert np.allclose(np.linalg.norm(env.normals, axis=1), 1)
    assert np.array_equal(env.normals, tasks.LinearClassificationHighDim(n_task=7, n_dim=5, boundary_seed=3).normals)
    assert not np.allclose(env.normals, tasks.LinearClassificationHighDim(n_task=7, n_dim=5, boundary_seed=4).normals)
    s = draw(env)
    assert s["stim"].shape == (N, 5) and s["ob"].shape == (N, env.n_steps, 6)
    check_decision_targets(env, s, np.where(s["stim"] @ env.normals.T > 0, 1.0, -1.0))


def test_multiply_labels():
    env = tasks.MultiplyClassificationFull(n_task=8)
    assert np.allclose(env.thresholds, 0.2 * np.linspace(1 / 16, 1, 2))
    s = draw(env)
    x, y = s["stim"], s["ground_truth"]
    quadrant = 1 + (np.arctan2(x[:, 1], x[:, 0]) % (2 * np.pi) // (np.pi / 2)).astype(int)
    for label in range(8):
        group, j = divmod(label, 2)
        expected = (quadrant == group + 1) & (np.abs(x[:, 0] * x[:, 1]) > env.thresholds[j])
        assert np.array_equal(y[:, label] > 0, expected)
        assert expected.any()
    check_decision_targets(env, s, y)


def test_bound_accumulators():
    env = tasks.LinearClassificationBound(n_task=4, thres=1.5, timing=TIMING)
    s = draw(env, n=200)
    a, b = env.stim_steps
    tan = np.tan((np.arange(4) + 0.5) * np.pi / 4)
    absorbed_any = False
    for ob, gt in zip(s["ob"], s["gt"]):
        acc, expected = np.zeros(4), []
        for t in range(a, b):
            free = np.abs(acc) < 1.5
            acc[free] += ob[t, 1] - tan[free] * ob[t, 0]
            acc = np.where(free & (np.abs(acc) >= 1.5), 1.5 * np.sign(acc), acc)
            expected.append(acc.copy())
        absorbed_any |= bool(np.any(np.abs(acc) == 1.5))
        assert np.allclose(gt[a:b], expected, atol=1e-4)
        assert np.all(gt[:a] == 0)
        assert np.allclose(gt[b:], acc, atol=1e-4)  # held through delay and decision
    assert absorbed_any
    assert np.all(np.abs(s["gt"]) <= 1.5)
    assert np.allclose(s["ground_truth"], s["gt"][:, -1])


def test_denoise_quadrants():
    env = tasks.DenoiseQuads(quad_num=[2, 4])
    s = draw(env)
    x = s["stim"]
    check_decision_targets(env, s, x)
    in2 = (x[:, 0] < 0) & (x[:, 1] > 0)
    in4 = (x[:, 0] > 0) & (x[:, 1] < 0)
    assert np.all(in2 | in4) and 0.4 < in2.mean() < 0.6
    assert np.abs(x).max() < 0.5


def test_denoise_high_dim_orthants():
    patterns = np.array(list(itertools.product([-0.5, 0.5], repeat=3)))
    env = tasks.DenoiseQuadsHighDim(n_dim=3, quad_num=[2, 7])  # k-1 = 001, 110: not bit palindromes
    s = draw(env)
    check_decision_targets(env, s, s["stim"])
    signs = np.sign(s["stim"]) / 2
    is2, is7 = np.all(signs == patterns[1], 1), np.all(signs == patterns[6], 1)
    assert np.all(is2 | is7) and is2.any() and is7.any()
    # default: every orthant, equally often
    s = draw(tasks.DenoiseQuadsHighDim(n_dim=3))
    counts = np.unique(np.sign(s["stim"]), axis=0, return_counts=True)[1]
    assert len(counts) == 8 and stats.chisquare(counts).pvalue > 1e-3


def test_free_rt_stimulus_through_decision():
    env = tasks.DenoiseQuadsFreeRT(timing={"fixation": 100, "stimulus": 500, "delay": 0, "decision": 300})
    s = draw(env, n=500)
    dec = slice(env.start_step["decision"], env.end_step["decision"])
    assert env.stim_steps == (1, 9)
    # the free-RT layout of LinearClassificationBound: stimulus channels only, no fixation cue
    assert not env.fixation and env.stim_channels == [0, 1] and env.n_obs == 2
    assert np.all(s["ob"][:, 0] == 0) and np.all(s["ob"][:, dec] != 0)
    noise = stim_residual(env, s)
    assert noise.shape[1] == 8 and abs(noise.std() / 0.2 - 1) < 0.03
    check_decision_targets(env, s, s["stim"])


# -----------------------------------------------------------------------------
# noise


@pytest.mark.parametrize("name", [n for n in ALL if n not in ("LinearClassificationAnisot",)])
def test_noise_std(name):
    env = tasks.make_env(name, sigma=3, dt=50)
    noise = stim_residual(env, draw(env, n=1000))
    std = 3 / np.sqrt(50)
    if name == "LinearClassificationCentOut":  # the gumbel variant is tested separately
        assert env.dist == "gauss"
    assert abs(noise.std() / std - 1) < 0.03
    assert abs(noise.mean()) < 0.03 * std


def test_anisotropic_noise():
    noise = stim_residual(env := tasks.LinearClassificationAnisot(), draw(env))
    assert np.allclose(noise.std(axis=(0, 1)), [0.2, 0.4], rtol=0.03)


def test_gumbel_noise():
    noise = stim_residual(env := tasks.LinearClassificationCentOut(dist="gumbel"), draw(env)).ravel()
    assert abs(noise.mean() / (np.euler_gamma * 0.2) - 1) < 0.03
    assert abs(noise.std() / (np.pi / np.sqrt(6) * 0.2) - 1) < 0.03
    assert stats.skew(noise) > 1  # Gumbel skewness is 1.14; a Gaussian's is 0


@pytest.mark.parametrize("a", [0.7, -0.3])
def test_autocorrelated_noise(a):
    env = tasks.LinearClassificationAutocorr(ar_coef=a)
    noise = stim_residual(env, draw(env))
    lag1 = np.mean(noise[:, 1:] * noise[:, :-1]) / np.mean(noise**2)
    assert abs(lag1 - a) < 0.02
    assert np.allclose(noise.std(axis=(0, 2)), 0.2, rtol=0.06)  # stationary from the first step


def test_correlated_latents():
    env = tasks.LinearClassificationCorr(corr=0.6)
    x = draw(env, n=5000)["stim"]
    z = ndtri(x + 0.5)
    assert abs(np.corrcoef(z.T)[0, 1] - 0.6) < 0.03
    for i in range(2):
        assert stats.kstest(x[:, i], stats.uniform(loc=-0.5, scale=1).cdf).pvalue > 1e-3


# -----------------------------------------------------------------------------
# layout of periods and channels


@pytest.mark.parametrize("name", ALL)
def test_period_and_channel_layout(name):
    timing = dict(TIMING, delay=0) if name == "DenoiseQuadsFreeRT" else TIMING
    rule = [0.0, 1.0, 0.5]
    env = tasks.make_env(name, timing=timing, rule_vec=rule)
    assert env.n_steps == sum(timing.values()) // 100
    s = draw(env, n=50)
    ob, gt = s["ob"], s["gt"]
    assert ob.shape == (50, env.n_steps, env.n_obs) and ob.dtype == np.float32
    assert gt.shape == (50, env.n_steps, env.n_out) and gt.dtype == np.float32
    dec0, dec1 = env.start_step["decision"], env.end_step["decision"]
    assert env.fixation == (name not in ("LinearClassificationBound", "DenoiseQuadsFreeRT"))
    if env.fixation:
        assert np.all(ob[:, :dec0, 0] == 1) and np.all(ob[:, dec0:, 0] == 0)
        assert env.stim_channels[0] == 1
    a, b = env.stim_steps
    stim = ob[:, :, env.stim_channels]
    assert np.all(stim[:, :a] == 0) and np.all(stim[:, b:] == 0) and np.all(stim[:, a:b] != 0)
    assert env.rule_channels == list(range(env.n_obs - 3, env.n_obs))
    assert np.all(ob[:, :, env.rule_channels] == rule)
    if name == "LinearClassificationBound":
        assert np.all(gt[:, : env.start_step["stimulus"]] == 0)
    else:
        assert np.all(gt[:, :dec0] == 0) and np.all(gt[:, dec1:] == 0) and np.any(gt[:, dec0:dec1] != 0)
    # neurogym's own period bookkeeping agrees after a single trial
    env.new_trial()
    for period in tasks.PERIODS:
        assert (env.start_ind[period], env.end_ind[period]) == (env.start_step[period], env.end_step[period])
    assert env.ob.shape == (env.n_steps, env.n_obs)


def test_step_gives_targets_and_starts_new_trials():
    env = tasks.LinearClassificationCentOut(n_task=3)
    env.reset(seed=1)  # starts a trial and takes its first step
    first_trial, gt = env.trial, env.gt.copy()
    for t in range(1, env.n_steps):
        ob, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.array_equal(info["gt"], gt[t]) and reward == 0 and not (terminated or truncated)
        assert ob.dtype == np.float32
    assert info["new_trial"] and env.trial is not first_trial
    assert np.array_equal(first_trial["ground_truth"], gt[-1])


# -----------------------------------------------------------------------------
# seeding and the single-trial path


@pytest.mark.parametrize("name", ALL)
def test_check_env(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded observation Box, deprecated seed(), no render
        check_env(tasks.make_env(name))


@pytest.mark.parametrize("name", ALL)
def test_reset_seed_reproducible(name):
    env = tasks.make_env(name)

    def trials(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs, env.trial["stim"], env.ob.copy()]
        for _ in range(3):
            env.new_trial()
            out += [env.trial["stim"], env.ob.copy(), env.gt.copy()]
        return out

    first, again, other = trials(5), trials(5), trials(6)
    assert all(np.array_equal(u, v) for u, v in zip(first, again))
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("name", ALL)
def test_single_trial_and_batch_paths_agree(name):
    env = tasks.make_env(name)
    env.seed(0)
    single = {"stim": [], "ground_truth": [], "ob": []}
    for _ in range(400):
        trial = env.new_trial()
        single["stim"].append(trial["stim"])
        single["ground_truth"].append(trial["ground_truth"])
        single["ob"].append(env.ob)
    single = {key: np.array(value) for key, value in single.items()}
    batch = draw(env, seed=1)
    for i in range(env.n_dim):
        assert stats.ks_2samp(single["stim"][:, i], batch["stim"][:, i]).pvalue > 1e-3
    scale = env.action_space.high.max()
    assert np.allclose(single["ground_truth"].mean(0), batch["ground_truth"].mean(0), atol=0.2 * scale)
    assert abs(stim_residual(env, single).std() / stim_residual(env, batch).std() - 1) < 0.05
    assert single["ob"].dtype == batch["ob"].dtype and single["ob"].shape[1:] == batch["ob"].shape[1:]


# -----------------------------------------------------------------------------
# BatchSource


def batches(source, n):
    return [next(source) for _ in range(n)]


def same(stream_a, stream_b):
    return all(
        fa == fb and all(torch.equal(u, v) for u, v in zip(a, b))
        for (*a, fa), (*b, fb) in zip(stream_a, stream_b)
    )


def two_families():
    return [
        tasks.LinearClassificationCentOut(n_task=4, rule_vec=[1, 0]),
        tasks.TwoAlternativeForcedChoiceCent(rule_vec=[0, 1]),
    ]


def test_batch_source_shapes_and_families():
    envs = two_families()
    stream = batches(tasks.BatchSource(envs, batch_sz=5, seed=0, chunk=4), 40)
    families = [f for *_, f in stream]
    assert 10 < sum(families) < 30
    for inputs, targets, latents, f in stream:
        assert inputs.shape == (5, 22, 5) and inputs.dtype == torch.float32
        assert targets.shape == (5, 22, envs[f].n_out) and targets.dtype == torch.float32
        assert latents.shape == (5, 1, 2) and latents.dtype == torch.float32
        assert torch.all(inputs[:, :, 3:] == torch.tensor(envs[f].rule_vec, dtype=torch.float32))
        expected = envs[f]._targets(latents[:, 0].double().numpy())
        assert np.array_equal(targets[:, -1].numpy(), expected)


def test_batch_source_concatenates_trials():
    env = tasks.DenoiseQuads()
    inputs, targets, latents, _ = next(tasks.BatchSource([env], batch_sz=3, seed=0, trial_num=4))
    T = env.n_steps
    assert inputs.shape == (3, 4 * T, 3) and targets.shape == (3, 4 * T, 2) and latents.shape == (3, 4, 2)
    for i in range(4):
        assert torch.equal(targets[:, (i + 1) * T - 1], latents[:, i])  # decision step of trial i
        assert torch.all(inputs[:, i * T, 0] == 1) and torch.all(inputs[:, (i + 1) * T - 1, 0] == 0)
    assert not torch.equal(latents[:, 0], latents[:, 1])


def test_batch_source_seeding():
    make = lambda seed: tasks.BatchSource(two_families(), batch_sz=4, seed=seed, chunk=3)  # noqa: E731
    assert same(batches(make(0), 10), batches(make(0), 10))
    assert not same(batches(make(0), 10), batches(make(1), 10))


def test_batch_source_resume_mid_chunk():
    reference = tasks.BatchSource(two_families(), batch_sz=4, seed=0, chunk=3)
    batches(reference, 4)  # one batch into the second chunk
    state = reference.state_dict()
    # the state survives JSON and torch.save(weights_only=True)
    state = json.loads(json.dumps(state))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = tasks.BatchSource(two_families(), batch_sz=4, seed=99, chunk=3)
    resumed.load_state_dict(state)
    assert same(batches(resumed, 8), batches(reference, 8))


def test_batch_source_bad_input():
    with pytest.raises(ValueError, match="observation size"):
        tasks.BatchSource([tasks.DenoiseQuads(), tasks.AttributeIntegrationCent()], batch_sz=2, seed=0)
    with pytest.raises(ValueError, match="batch_sz"):
        tasks.BatchSource([tasks.DenoiseQuads()], batch_sz=0, seed=0)
    state = tasks.BatchSource([tasks.DenoiseQuads()], batch_sz=2, seed=0, chunk=3).state_dict()
    with pytest.raises(ValueError, match="chunk"):
        tasks.BatchSource([tasks.DenoiseQuads()], batch_sz=2, seed=0, chunk=4).load_state_dict(state)


# -----------------------------------------------------------------------------
# keywords


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("LinearClassificationCentOut", {"n_task": 0}, "n_task"),
        ("LinearClassificationHighDim", {"n_dim": 0}, "n_dim"),
        ("DenoiseQuadsHighDim", {"n_dim": 0}, "n_dim"),
        ("TwoAlternativeForcedChoiceCent", {"sigma": -1}, "sigma"),
        ("DenoiseQuads", {"dt": 0}, "dt"),
        ("DenoiseQuads", {"timing": {"fixation": 100, "stimulus": 2000, "decision": 100}}, "timing"),
        ("DenoiseQuads", {"timing": dict(TIMING, extra=100)}, "timing"),
        ("DenoiseQuads", {"timing": dict(TIMING, delay=-100)}, "delay"),
        ("DenoiseQuads", {"timing": dict(TIMING, stimulus=250)}, "multiple of dt"),
        ("DenoiseQuads", {"timing": {p: 0 for p in tasks.PERIODS}}, "timing"),
        ("LinearClassificationCentOut", {"dist": "cauchy"}, "dist"),
        ("DenoiseQuads", {"quad_num": [0, 1]}, "quad_num"),
        ("DenoiseQuads", {"quad_num": [5]}, "quad_num"),
        ("DenoiseQuads", {"quad_num": []}, "quad_num"),
        ("DenoiseQuadsHighDim", {"n_dim": 3, "quad_num": [9]}, "quad_num"),
        ("DenoiseQuadsFreeRT", {"timing": TIMING}, "delay"),
        ("MultiplyClassificationFull", {"n_task": 6}, "multiple of 4"),
        ("MultiplyClassificationFull", {"n_task": 8, "thresholds": [0.1]}, "thresholds"),
        ("LinearClassificationAutocorr", {"ar_coef": 1.0}, "ar_coef"),
        ("LinearClassificationCorr", {"corr": -1.0}, "corr"),
        ("LinearClassificationBound", {"thres": 0}, "thres"),
        ("AttributeIntegrationCent", {"rule_vec": []}, "rule_vec"),
        ("DenoiseQuads", {"rule_vec": [[1, 0]]}, "rule_vec"),
    ],
)
def test_bad_keywords_raise(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tasks.make_env(name, **kwargs)


def test_make_env():
    env = tasks.make_env("LinearClassificationHighDim", n_dim=4, n_task=3)
    assert (env.n_dim, env.n_out, env.n_obs) == (4, 3, 5)
    with pytest.raises(ValueError, match="LinearClassificationCentOut"):
        tasks.make_env("LinearClassificationCentout")


# -----------------------------------------------------------------------------
# tasks from a run's configuration


def test_period_masks_follow_the_timing():
    env = tasks.LinearClassificationCentOut(timing={"fixation": 100, "stimulus": 300, "delay": 200, "decision": 100})
    assert env.period_mask("stimulus", trial_num=2).tolist() == [0, 1, 1, 1, 0, 0, 0] * 2
    assert env.period_mask("decision", trial_num=2).tolist() == [0, 0, 0, 0, 0, 0, 1] * 2


def test_from_config_resolves_variants_and_options():
    config = train.defaults()
    assert type(tasks.from_config(dict(config, corr=0.5))).__name__ == "LinearClassificationCorr"
    assert type(tasks.from_config(dict(config, autocorr=0.5))).__name__ == "LinearClassificationAutocorr"
    env = tasks.from_config(config, "DenoiseQuads", quad_num=[2])
    assert np.all(env.sample(np.random.default_rng(0), 50)["stim"] * [-1, 1] > 0)
    assert tasks.from_config(dict(config, noise_enc=True)).noise_std == 0  # noise goes after the encoder
    two = tasks.training_envs(dict(config, task=["LinearClassificationCentOut", "AttributeIntegrationCent"]), 4)
    assert [e.rule_vec.tolist() for e in two] == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="did you mean"):
        tasks.from_config(dict(config, task="LinearClassificationCentOur"))
    with pytest.raises(ValueError, match="gumbel"):
        tasks.from_config(dict(config, dist="gumbel"), "DenoiseQuads")


def test_next_many_gives_the_batches_next_gives_with_families_side_by_side():
    def two_families():
        return [tasks.LinearClassificationCentOut(n_task=3, rule_vec=[1, 0]),
                tasks.TwoAlternativeForcedChoiceCent(rule_vec=[0, 1])]

    one = tasks.BatchSource(two_families(), batch_sz=4, seed=5, chunk=3)
    many = tasks.BatchSource(two_families(), batch_sz=4, seed=5, chunk=3)
    many.next()  # start mid-chunk
    one.next()
    ob, gt, active = many.next_many(8)
    assert many.compact and gt.shape == (8, 4, 1, 4)  # decision targets only ...
    gt = many.dense(gt)  # ... spread over the steps
    assert ob.shape == (8, 4, 22, 5) and gt.shape == (8, 4, 22, 4) and active.shape == (8, 4)
    for i in range(8):
        inputs, targets, _, family = one.next()
        lo, hi = (0, 3) if family == 0 else (3, 4)
        assert torch.equal(ob[i], inputs) and torch.equal(gt[i, ..., lo:hi], targets)
        assert active[i].tolist() == [float(lo <= k < hi) for k in range(4)]
        assert not gt[i, ..., [k for k in range(4) if not lo <= k < hi]].any()
    assert many.state_dict() == one.state_dict()  # the stream is at the same place


def test_compact_targets_spread_over_each_trial_of_a_sequence():
    env = tasks.LinearClassificationCentOut(n_task=3, timing={"fixation": 100, "stimulus": 300, "delay": 100, "decision": 200})
    source = tasks.BatchSource([env], batch_sz=2, seed=0, trial_num=3)
    reference = tasks.BatchSource([env], batch_sz=2, seed=0, trial_num=3)
    reference.compact = False  # as if its targets changed in time: the dense path
    reference.rng = np.random.default_rng(0)
    reference._refill()
    inputs, targets, _, _ = source.next()
    assert torch.equal(targets, reference.next()[1]) and targets.shape == (2, 21, 3)
    ob, gt, _ = source.next_many(2)
    dense_ob, dense_gt, _ = reference.next_many(2)
    assert torch.equal(source.dense(gt), dense_gt) and torch.equal(ob, dense_ob)
    bound = tasks.BatchSource([tasks.LinearClassificationBound(n_task=2)], batch_sz=2, seed=0)
    assert not bound.compact and bound.next_many(1)[1].shape == (1, 2, 22, 2)
