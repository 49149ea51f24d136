"""Tasks of the paper as neurogym TrialEnvs, plus the seeded batch source used in training.

Every task draws a latent x* in R^D, shows x* + noise for the stimulus period and asks
for labels of x* (classification, +1/-1 per task) or for x* itself (regression) at the
decision period. One method, `sample(rng, n)`, draws n whole trials at once with
numpy; the single-trial neurogym interface (`new_trial`, `step`) and `BatchSource`
both use it, so they draw from the same distribution.

Observation channels: [fixation, stim_1..stim_D, rule...]. Fixation is 1 during
fixation, stimulus and delay, 0 at decision; stimulus channels carry x* + noise during
the stimulus period and 0 elsewhere; rule channels are constant. Targets are 0 outside
the decision period. These are supervised-learning tasks: `step` gives reward 0 always;
the target of the current step is in info['gt'].
"""

import difflib
import inspect

import numpy as np
import torch
from neurogym.core import TrialEnv
from neurogym.utils import spaces
from scipy.special import ndtr

import checks

PERIODS = ("fixation", "stimulus", "delay", "decision")
DEFAULT_TIMING = {"fixation": 100, "stimulus": 2000, "delay": 0, "decision": 100}
# quadrant q (1-based) -> signs of (x1, x2); 1:(+,+) 2:(-,+) 3:(-,-) 4:(+,-)
QUAD_SIGNS = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=float)


# -----------------------------------------------------------------------------
# keyword checks


def _check_timing(timing, dt):
    """Return (timing in ms, steps per period); every period must be a multiple of dt."""
    timing = DEFAULT_TIMING if timing is None else timing
    if not isinstance(timing, dict) or set(timing) != set(PERIODS):
        got = sorted(timing) if isinstance(timing, dict) else repr(timing)
        raise ValueError(f"timing must be a dict with exactly the keys {list(PERIODS)}, got {got}")
    steps = {}
    for period in PERIODS:
        ms = timing[period]
        if isinstance(ms, bool) or not isinstance(ms, (int, float, np.number)) or not ms >= 0:
            raise ValueError(f"timing['{period}'] must be a non-negative number of ms, got {ms!r}")
        n = round(ms / dt)
        if not np.isclose(n * dt, ms):
            raise ValueError(f"timing['{period}'] = {ms} must be a multiple of dt = {dt}")
        steps[period] = int(n)
    if sum(steps.values()) == 0:
        raise ValueError("timing must give a trial of at least one step, got all durations 0")
    return {p: timing[p] for p in PERIODS}, steps


def _pm(condition):
    """Boolean array -> +1 (true) / -1 (false)."""
    return np.where(condition, 1.0, -1.0)


def _line_angles(n_task):
    """phi_k = (k + 1/2) pi / N: lines through the origin at evenly spaced angles."""
    return (np.arange(n_task) + 0.5) * np.pi / n_task


# -----------------------------------------------------------------------------
# shared machinery


class LatentTask(TrialEnv):
    """Base class: timing, channels, noise, seeding and the neurogym plumbing.

    A task sets n_dim/n_out and defines `_latents(rng, n)` and `_targets(x)`; it may
    override `_noise(rng, n, steps)` (default Gaussian, std sigma/sqrt(dt) per step).
    """

    # targets are 0 except in the decision period, where they are 'ground_truth': the
    # training data can then carry ground_truth alone and spread it over the steps later
    targets_at_decision = True
    # how a network's linear readout answers this task (objective.py): None lets the run's
    # CE_loss choose between a sigmoid with BCE and a tanh with MSE against the labels
    readout = None

    def __init__(self, dt, timing, sigma, rule_vec, n_dim, n_out, target_high, fixation=True):
        if not dt > 0:
            raise ValueError(f"dt must be > 0 (ms), got {dt!r}")
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma!r}")
        super().__init__(dt=dt)
        self.timing, self.period_steps = _check_timing(timing, dt)
        self.rule_vec = np.zeros(0) if rule_vec is None else np.asarray(rule_vec, dtype=float)
        if self.rule_vec.ndim != 1 or not np.all(np.isfinite(self.rule_vec)):
            raise ValueError(f"rule_vec must be None or a 1-D vector of finite numbers, got {rule_vec!r}")
        self.sigma = sigma
        self.noise_std = sigma / np.sqrt(dt)  # per-step std; may become per-channel in subclasses
        self.n_dim, self.n_out, self.fixation = n_dim, n_out, fixation

        # step index where each period starts/ends; the stimulus is shown on stim_steps
        bounds = np.cumsum([0] + [self.period_steps[p] for p in PERIODS])
        self.start_step = dict(zip(PERIODS, bounds[:-1].tolist()))
        self.end_step = dict(zip(PERIODS, bounds[1:].tolist()))
        self.n_steps = int(bounds[-1])
        self.stim_steps = (self.start_step["stimulus"], self.end_step["stimulus"])

        first_stim = 1 if fixation else 0
        self.stim_channels = list(range(first_stim, first_stim + n_dim))
        self.rule_channels = list(range(first_stim + n_dim, first_stim + n_dim + len(self.rule_vec)))
        self.n_obs = first_stim + n_dim + len(self.rule_vec)
        names = {"stimulus": self.stim_channels}
        if fixation:
            names["fixation"] = 0
        if len(self.rule_vec):
            names["rule"] = self.rule_channels
        # noise is unbounded, so the observation Box is too
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.n_obs,), dtype=np.float32, name=names)
        self.action_space = spaces.Box(-target_high, target_high, shape=(n_out,), dtype=np.float32)
        self.rng = np.random.default_rng()

    def period_mask(self, period, trial_num=1):
        """Boolean mask (trial_num·n_steps,) of the steps of `period` in a sequence of
        trial_num concatenated trials."""
        mask = np.zeros(self.n_steps, dtype=bool)
        mask[self.start_step[period] : self.end_step[period]] = True
        return np.tile(mask, trial_num)

    # -- sampling --------------------------------------------------------------

    def _noise(self, rng, n, steps):
        return rng.standard_normal((n, steps, self.n_dim)) * self.noise_std

    def observations(self, x, rng=None):
        """(n, T, n_obs) float32 observations of latents x (n, D) in this task's channel
        layout; noise drawn from rng, or none without one (noise-free analyses)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_dim:
            raise ValueError(f"x must have shape (n, {self.n_dim}), got {x.shape}")
        n = len(x)
        ob = np.zeros((n, self.n_steps, self.n_obs), dtype=np.float32)
        if self.fixation:
            ob[:, : self.start_step["decision"], 0] = 1
        a, b = self.stim_steps
        ob[:, a:b, self.stim_channels] = x[:, None, :] + (0 if rng is None else self._noise(rng, n, b - a))
        ob[:, :, self.rule_channels] = self.rule_vec
        return ob

    def sample(self, rng, n, gt=True):
        """Draw n trials: dict with 'stim' (n, D) latents, 'ob' (n, T, n_obs), 'gt' (n, T, n_out)
        (left out with gt=False) and 'ground_truth' (n, n_out) decision targets."""
        x = self._latents(rng, n)
        trials = {"stim": x, "ob": self.observations(x, rng), "ground_truth": self._targets(x)}
        if gt:
            trials["gt"] = np.zeros((n, self.n_steps, self.n_out), dtype=np.float32)
            trials["gt"][:, self.start_step["decision"] : self.end_step["decision"]] = trials["ground_truth"][:, None, :]
        return trials

    # -- neurogym / gymnasium interface ----------------------------------------

    def seed(self, seed=None):
        """Reseed the trial generator and the spaces."""
        self.rng = np.random.default_rng(seed)
        self.action_space.seed(seed)
        self.observation_space.seed(seed)
        return [seed]

    def reset(self, seed=None, options=None):
        # neurogym's reset does not reseed self.rng; do it so reset(seed=s) is reproducible
        if seed is not None:
            self.seed(seed)
        return super().reset(seed=seed, options=options)

    def _new_trial(self):
        trial = self.sample(self.rng, 1)
        self.add_period(list(PERIODS), duration=[self.period_steps[p] * self.dt for p in PERIODS])
        self.ob, self.gt = trial["ob"][0], trial["gt"][0]
        self._ob_built = self._gt_built = True
        return {"stim": trial["stim"][0], "ground_truth": trial["ground_truth"][0]}

    def _step(self, action):
        return self.ob_now, 0.0, False, False, {}


# -----------------------------------------------------------------------------
# classification tasks


def _uniform(rng, n, n_dim):
    return rng.random((n, n_dim)) - 0.5


class TwoAlternativeForcedChoiceCent(LatentTask):
    """x* ~ U(-.5,.5)^2; one label: x2 > x1."""

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None):
        super().__init__(dt, timing, sigma, rule_vec, n_dim=2, n_out=1, target_high=1)

    def _latents(self, rng, n):
        return _uniform(rng, n, 2)

    def _targets(self, x):
        return _pm(x[:, 1:2] > x[:, 0:1])


class AttributeIntegrationCent(LatentTask):
    """x* ~ U(-.5,.5)^2; one label: x1 + x2 > 0. Always has a rule channel (default [1])."""

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None):
        rule_vec = [1.0] if rule_vec is None else rule_vec
        if np.size(rule_vec) < 1:
            raise ValueError("rule_vec of AttributeIntegrationCent must have at least 1 entry")
        super().__init__(dt, timing, sigma, rule_vec, n_dim=2, n_out=1, target_high=1)

    def _latents(self, rng, n):
        return _uniform(rng, n, 2)

    def _targets(self, x):
        return _pm(x.sum(1, keepdims=True) > 0)


class LinearClassificationCentOut(LatentTask):
    """x* ~ U(-.5,.5)^2; N labels: x2 > tan(phi_k) x1, phi_k = (k+1/2) pi/N.

    dist='gumbel' replaces the Gaussian noise by Gumbel(loc=0, scale=sigma/sqrt(dt)), as
    the SPEC defines it: that noise has mean 0.577*scale and std 1.28*scale.
    """

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, n_task=24, dist="gauss"):
        n_task = checks.positive_int("n_task", n_task)
        if dist not in ("gauss", "gumbel"):
            raise ValueError(f"dist must be 'gauss' or 'gumbel', got {dist!r}")
        super().__init__(dt, timing, sigma, rule_vec, n_dim=2, n_out=n_task, target_high=1)
        self.n_task, self.dist = n_task, dist
        self.phi = _line_angles(n_task)

    def _latents(self, rng, n):
        return _uniform(rng, n, 2)

    def _noise(self, rng, n, steps):
        if self.dist == "gumbel":
            return rng.gumbel(0.0, self.noise_std, size=(n, steps, 2))
        return super()._noise(rng, n, steps)

    def _targets(self, x):
        return _pm(x[:, 1:2] > np.tan(self.phi) * x[:, 0:1])


class LinearClassificationAnisot(LinearClassificationCentOut):
    """As CentOut, with noise std on x2 twice that on x1 (x1 keeps sigma/sqrt(dt))."""

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, n_task=24):
        super().__init__(dt, timing, sigma, rule_vec, n_task=n_task)
        self.noise_std = self.noise_std * np.array([1.0, 2.0])


class LinearClassificationAutocorr(LinearClassificationCentOut):
    """As CentOut, with AR(1) noise per channel: e_t = a e_{t-1} + N(0, s^2 (1-a^2)), e_0 ~ N(0, s^2)."""

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, n_task=24, ar_coef=0.7):
        super().__init__(dt, timing, sigma, rule_vec, n_task=n_task)
        self.ar_coef = float(checks.open_interval("ar_coef", ar_coef))

    def _noise(self, rng, n, steps):
        a = self.ar_coef
        e = rng.standard_normal((n, steps, 2)) * self.noise_std
        e[:, 1:] *= np.sqrt(1 - a**2)  # innovations; e[:, 0] is the stationary start
        for t in range(1, steps):
            e[:, t] += a * e[:, t - 1]
        return e


class LinearClassificationCorr(LinearClassificationCentOut):
    """As CentOut, with correlated latents: z ~ N(0, [[1,c],[c,1]]), x* = Phi(z) - 0.5 (uniform marginals)."""

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, n_task=24, corr=0.7):
        super().__init__(dt, timing, sigma, rule_vec, n_task=n_task)
        self.corr = float(checks.open_interval("corr", corr))

    def _latents(self, rng, n):
        e = rng.standard_normal((n, 2))
        z = np.stack([e[:, 0], self.corr * e[:, 0] + np.sqrt(1 - self.corr**2) * e[:, 1]], axis=1)
        return ndtr(z) - 0.5


class LinearClassificationHighDim(LatentTask):
    """x* ~ U(-.5,.5)^D; N labels: n_k . x* > 0, unit normals n_k drawn once from boundary_seed
    (from_config passes a network's own seed unless its configuration fixes one)."""

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, n_task=24, n_dim=2, boundary_seed=0):
        n_task = checks.positive_int("n_task", n_task)
        n_dim = checks.positive_int("n_dim", n_dim)
        super().__init__(dt, timing, sigma, rule_vec, n_dim=n_dim, n_out=n_task, target_high=1)
        self.n_task, self.boundary_seed = n_task, boundary_seed
        normals = np.random.default_rng(boundary_seed).standard_normal((n_task, n_dim))
        self.normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)

    def _latents(self, rng, n):
        return _uniform(rng, n, self.n_dim)

    def _targets(self, x):
        return _pm(x @ self.normals.T > 0)


class MultiplyClassificationFull(LatentTask):
    """x* ~ U(-.5,.5)^2; N labels in 4 groups of N/4. Group g belongs to quadrant g+1; its label j
    is true iff x* lies in that quadrant and |x1 x2| > thresholds[j]."""

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, n_task=24, thresholds=None):
        n_task = checks.positive_int("n_task", n_task)
        if n_task % 4:
            raise ValueError(f"n_task must be a multiple of 4 for MultiplyClassificationFull, got {n_task}")
        if thresholds is None:
            thresholds = 0.2 * np.linspace(1 / (2 * n_task), 1, n_task // 4)
        thresholds = np.asarray(thresholds, dtype=float)
        if thresholds.shape != (n_task // 4,) or np.any(thresholds < 0):
            raise ValueError(f"thresholds must be n_task/4 = {n_task // 4} non-negative numbers, got {thresholds}")
        super().__init__(dt, timing, sigma, rule_vec, n_dim=2, n_out=n_task, target_high=1)
        self.n_task, self.thresholds = n_task, thresholds

    def _latents(self, rng, n):
        return _uniform(rng, n, 2)

    def _targets(self, x):
        in_quad = np.all(np.sign(x)[:, None, :] == QUAD_SIGNS, axis=2)  # (n, 4)
        group = in_quad.repeat(self.n_task // 4, axis=1)  # label l belongs to quadrant l // (N/4) + 1
        above = np.abs(x[:, 0] * x[:, 1])[:, None] > np.tile(self.thresholds, 4)
        return _pm(group & above)


class LinearClassificationBound(LatentTask):
    """Free reaction-time task: targets are N drift-diffusion accumulators.

    A_k(t) = sum over stimulus steps s <= t of (X2(s) - tan(phi_k) X1(s)), X = x* + noise as
    observed, absorbed at +-thres (from the first step |A_k| >= thres it stays at the
    bound's value), held through delay and decision, 0 during fixation. Observations
    are the 2 stimulus channels (plus rule channels, if any), no fixation channel; like
    the other tasks they are 0 outside the stimulus period. 'ground_truth' is the final
    accumulator value.
    """

    targets_at_decision = False  # the accumulators change at every stimulus step
    readout = "bound_tanh"  # bound·tanh, compared with the accumulators by MSE

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, n_task=24, thres=5):
        n_task = checks.positive_int("n_task", n_task)
        if not thres > 0:
            raise ValueError(f"thres must be > 0, got {thres!r}")
        super().__init__(dt, timing, sigma, rule_vec, n_dim=2, n_out=n_task, target_high=thres, fixation=False)
        self.n_task, self.thres = n_task, float(thres)
        self.phi = _line_angles(n_task)

    def _latents(self, rng, n):
        return _uniform(rng, n, 2)

    def sample(self, rng, n, gt=True):
        x = self._latents(rng, n)
        ob = self.observations(x, rng)
        a, b = self.stim_steps
        seen = ob[:, a:b, :2].astype(float)
        acc = _absorb(np.cumsum(seen[..., 1:2] - np.tan(self.phi) * seen[..., 0:1], axis=1), self.thres)
        final = acc[:, -1] if b > a else np.zeros((n, self.n_task))
        gt = np.zeros((n, self.n_steps, self.n_task), dtype=np.float32)
        gt[:, a:b] = acc
        gt[:, b:] = final[:, None, :]
        return {"stim": x, "ob": ob, "gt": gt, "ground_truth": final}


def _absorb(acc, thres):
    """Accumulators (n, steps, N) absorbed at +-thres: from the first step with |A| >= thres on,
    A stays at the bound."""
    hit = np.abs(acc) >= thres
    if hit.shape[1] == 0:
        return acc
    first = hit.argmax(axis=1)  # first step at the bound (0 if never)
    absorbed = hit.any(axis=1)[:, None, :] & (np.arange(acc.shape[1])[None, :, None] >= first[:, None, :])
    bound = thres * np.sign(np.take_along_axis(acc, first[:, None, :], axis=1))
    return np.where(absorbed, bound, acc)


# -----------------------------------------------------------------------------
# regression tasks


def _check_quads(quad_num, n_quads):
    quads = np.atleast_1d(np.asarray(quad_num))
    ok = quads.size > 0 and quads.ndim == 1 and np.issubdtype(quads.dtype, np.integer)
    if not ok or quads.min() < 1 or quads.max() > n_quads:
        raise ValueError(f"quad_num must be a non-empty list of quadrant numbers in 1..{n_quads}, got {quad_num!r}")
    return quads.astype(int)


def _orthant_latents(rng, n, signs):
    """Pick a row of signs (+-.5 per coordinate) uniformly per trial, x* = U(0,1)^D * signs."""
    chosen = signs[rng.integers(len(signs), size=n)]
    return rng.random(chosen.shape) * chosen


class DenoiseQuads(LatentTask):
    """Regression of x*: pick a quadrant q uniformly from quad_num, x* = U(0,1)^2 * 0.5 * signs(q).

    Quadrants: 1:(+,+) 2:(-,+) 3:(-,-) 4:(+,-).
    """

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, quad_num=(1, 2, 3, 4)):
        super().__init__(dt, timing, sigma, rule_vec, n_dim=2, n_out=2, target_high=0.5)
        self.quad_num = _check_quads(quad_num, 4)
        self.signs = 0.5 * QUAD_SIGNS[self.quad_num - 1]

    def _latents(self, rng, n):
        return _orthant_latents(rng, n, self.signs)

    def _targets(self, x):
        return x


class DenoiseQuadsHighDim(LatentTask):
    """DenoiseQuads over the 2^D orthants; orthant k (1-based) is the k-th sign pattern of
    itertools.product([-.5, .5], repeat=D) (for D=2 this numbering differs from DenoiseQuads).
    quad_num=None: all orthants."""

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, n_dim=2, quad_num=None):
        n_dim = checks.positive_int("n_dim", n_dim)
        super().__init__(dt, timing, sigma, rule_vec, n_dim=n_dim, n_out=n_dim, target_high=0.5)
        self.quad_num, self.signs = None, None
        if quad_num is not None:
            self.quad_num = _check_quads(quad_num, 2**n_dim)
            # bit j (most significant first) of k-1 selects +.5, the order of itertools.product
            bits = [[(int(k) - 1) >> (n_dim - 1 - j) & 1 for j in range(n_dim)] for k in self.quad_num]
            self.signs = np.array(bits, dtype=float) - 0.5

    def _latents(self, rng, n):
        if self.signs is None:  # every orthant equally likely = independent signs, no 2^D table
            return rng.random((n, self.n_dim)) * (rng.integers(2, size=(n, self.n_dim)) - 0.5)
        return _orthant_latents(rng, n, self.signs)

    def _targets(self, x):
        return x


class DenoiseQuadsFreeRT(DenoiseQuads):
    """DenoiseQuads in the free reaction-time layout of LinearClassificationBound, whose
    networks it evaluates: no fixation channel (nothing cues the answer) and no delay;
    the noisy stimulus continues through the decision period."""

    def __init__(self, dt=100, timing=None, sigma=2, rule_vec=None, quad_num=(1, 2, 3, 4)):
        LatentTask.__init__(self, dt, timing, sigma, rule_vec, n_dim=2, n_out=2, target_high=0.5,
                            fixation=False)
        self.quad_num = _check_quads(quad_num, 4)
        self.signs = 0.5 * QUAD_SIGNS[self.quad_num - 1]
        if self.period_steps["delay"]:
            raise ValueError(f"timing['delay'] must be 0 for DenoiseQuadsFreeRT (no delay), got {self.timing['delay']}")
        self.stim_steps = (self.start_step["stimulus"], self.end_step["decision"])


TASKS = {
    cls.__name__: cls
    for cls in (
        TwoAlternativeForcedChoiceCent,
        AttributeIntegrationCent,
        LinearClassificationCentOut,
        LinearClassificationAnisot,
        LinearClassificationAutocorr,
        LinearClassificationCorr,
        LinearClassificationHighDim,
        MultiplyClassificationFull,
        LinearClassificationBound,
        DenoiseQuads,
        DenoiseQuadsHighDim,
        DenoiseQuadsFreeRT,
    )
}


def make_env(name, **kwargs):
    """Build the task called `name` with its keywords."""
    if name not in TASKS:
        close = difflib.get_close_matches(str(name), TASKS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown task {name!r}{hint} Known tasks: {sorted(TASKS)}")
    return TASKS[name](**kwargs)


# -----------------------------------------------------------------------------
# batches for training


class BatchSource:
    """Seeded, resumable stream of training batches from one or more task families.

    Each batch comes from one family (uniformly at random). `next(source)` returns
    (inputs (B, trial_num*T, n_obs), targets (B, trial_num*T, n_out), latents
    (B, trial_num, D), family) as float32 torch tensors and an int. Batches are drawn
    `chunk` at a time; state_dict() records where the stream is, so a source restored
    with load_state_dict continues identically. When every family's targets live in
    the decision period alone (`compact`), a chunk keeps just the decision targets
    and `dense()` spreads them over the steps (on any device).
    """

    def __init__(self, envs, batch_sz, seed, trial_num=1, chunk=64):
        self.envs = list(envs)
        if not self.envs:
            raise ValueError("envs must be a non-empty list of task envs")
        if len({env.n_obs for env in self.envs}) != 1:
            raise ValueError(f"envs must share one observation size, got {[env.n_obs for env in self.envs]}")
        self.batch_sz = checks.positive_int("batch_sz", batch_sz)
        self.trial_num = checks.positive_int("trial_num", trial_num)
        self.chunk = checks.positive_int("chunk", chunk)
        self.compact = all(env.targets_at_decision for env in self.envs)
        first = self.envs[0]
        self._decision = torch.as_tensor(first.period_mask("decision", self.trial_num))
        self._trial_of_step = torch.arange(self.trial_num).repeat_interleave(first.n_steps)
        self._on_device = {}
        self.rng = np.random.default_rng(seed)
        self._refill()

    def _refill(self):
        self._chunk_state = self.rng.bit_generator.state
        self._family = self.rng.integers(len(self.envs), size=self.chunk)
        self._slot = np.zeros(self.chunk, dtype=int)  # position of each batch among its family's
        self._data = {}
        B, k_trials = self.batch_sz, self.trial_num
        for f, env in enumerate(self.envs):
            batches = np.flatnonzero(self._family == f)
            if len(batches) == 0:
                continue
            self._slot[batches] = np.arange(len(batches))
            k = len(batches)
            s = env.sample(self.rng, k * B * k_trials, gt=not self.compact)
            # trials of one sequence are consecutive in memory, so reshaping concatenates them in time
            ob = s["ob"].reshape(k, B, k_trials * env.n_steps, env.n_obs)
            if self.compact:
                gt = s["ground_truth"].astype(np.float32).reshape(k, B, k_trials, env.n_out)
            else:
                gt = s["gt"].reshape(k, B, k_trials * env.n_steps, env.n_out)
            stim = s["stim"].astype(np.float32).reshape(k, B, k_trials, env.n_dim)
            self._data[f] = (torch.from_numpy(ob), torch.from_numpy(gt), torch.from_numpy(stim))
        self._index = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._index == self.chunk:
            self._refill()
        f, j = int(self._family[self._index]), int(self._slot[self._index])
        self._index += 1
        ob, gt, stim = self._data[f]
        return ob[j], self.dense(gt[j]), stim[j], f

    next = __next__

    def dense(self, targets):
        """Targets (..., B, trial_num, n_out) of a compact source spread over the steps:
        (..., B, T, n_out), each trial's decision targets on its decision steps and 0
        elsewhere; dense targets are returned as they are."""
        if not self.compact:
            return targets
        key = (targets.device, targets.dtype)
        if key not in self._on_device:  # made once per device: copies from the host would stall a CUDA graph
            self._on_device[key] = (self._decision.to(*key)[:, None], self._trial_of_step.to(targets.device))
        decision, trial_of_step = self._on_device[key]
        return targets.index_select(-2, trial_of_step) * decision  # index_select: a third of indexing's time

    def next_many(self, n):
        """The next n batches, as n calls of next() give them, with every family's outputs
        side by side: inputs (n, B, T, n_obs), targets (n, B, K, Σ n_out) (K = trial_num
        for a compact source, see dense(); T otherwise), zero outside each batch's
        family, and that family's outputs marked in active (n, Σ n_out). Copies whole
        runs of a chunk at once (the training loop's data path)."""
        offsets = np.cumsum([0] + [env.n_out for env in self.envs])
        T, n_obs = self.trial_num * self.envs[0].n_steps, self.envs[0].n_obs
        ob = torch.zeros(n, self.batch_sz, T, n_obs)
        gt = torch.zeros(n, self.batch_sz, self.trial_num if self.compact else T, int(offsets[-1]))
        active = torch.zeros(n, int(offsets[-1]))
        done = 0
        while done < n:
            if self._index == self.chunk:
                self._refill()
            take = min(n - done, self.chunk - self._index)
            families = self._family[self._index : self._index + take]
            slots = self._slot[self._index : self._index + take]
            for f, (ob_f, gt_f, _) in self._data.items():
                rows = np.flatnonzero(families == f)
                if not len(rows):
                    continue
                lo, hi = int(offsets[f]), int(offsets[f + 1])
                if len(rows) == take:  # one family: consecutive slots, copied as slices
                    at, src = slice(done, done + take), slice(int(slots[0]), int(slots[0]) + take)
                else:
                    at, src = torch.as_tensor(done + rows), torch.as_tensor(slots[rows])
                ob[at] = ob_f[src]
                gt[at, ..., lo:hi] = gt_f[src]
                active[at, lo:hi] = 1
            self._index += take
            done += take
        return ob, gt, active

    def state_dict(self):
        """Position in the stream, as plain ints/strings/dicts."""
        return {
            "rng_state": self._chunk_state,
            "index": self._index,
            "batch_sz": self.batch_sz,
            "trial_num": self.trial_num,
            "chunk": self.chunk,
            "n_families": len(self.envs),
        }

    def load_state_dict(self, state):
        """Continue the stream from a state_dict() of a source built with the same envs and sizes."""
        for key in ("batch_sz", "trial_num", "chunk"):
            if state[key] != getattr(self, key):
                raise ValueError(f"state has {key}={state[key]}, this source has {getattr(self, key)}")
        if state["n_families"] != len(self.envs):
            raise ValueError(f"state has n_families={state['n_families']}, this source has {len(self.envs)}")
        self.rng.bit_generator.state = state["rng_state"]
        self._refill()
        self._index = int(state["index"])


# -----------------------------------------------------------------------------
# tasks from a run's configuration (train.py's hyperparameters, SPEC §4)

REGRESSION_TASKS = ("DenoiseQuads", "DenoiseQuadsHighDim", "DenoiseQuadsFreeRT")
FREE_RT_TASK = "LinearClassificationBound"


def family(config, name=None):
    """The task class a configuration trains on: non-zero `corr` / `autocorr` select
    the correlated / autocorrelated variants of LinearClassificationCentOut."""
    name = name or config["task"]
    if name == "LinearClassificationCentOut":
        if config.get("corr", 0):
            return "LinearClassificationCorr"
        if config.get("autocorr", 0):
            return "LinearClassificationAutocorr"
    return name


def from_config(config, name=None, n_task=None, rule_vec=None, **overrides):
    """One task built with the configuration's timing, noise, latent dimensionality
    and task options. Keywords the class does not take are left out; `overrides` win."""
    name = family(config, name)
    if name not in TASKS:
        make_env(name)  # raises ValueError with a suggestion
    cls = TASKS[name]
    sigma = 0 if config.get("noise_enc") else config["n_sd_in"]  # noise_enc: the noise goes after the encoder
    kwargs = dict(dt=config["dt"], timing=dict(config["timing"]), sigma=sigma,
                  n_task=config["n_task"] if n_task is None else n_task, n_dim=config["n_dim"],
                  dist=config.get("dist", "gauss"), corr=config.get("corr", 0),
                  ar_coef=config.get("autocorr", 0), thres=config.get("bound", 5), rule_vec=rule_vec)
    accepted = inspect.signature(cls.__init__).parameters
    if "boundary_seed" in accepted:
        kwargs["boundary_seed"] = boundary_seed(config)
    kwargs.update(overrides)
    if config["n_dim"] != 2 and "n_dim" not in accepted:
        raise ValueError(f"task {name!r} is two-dimensional; for n_dim={config['n_dim']} "
                         "use LinearClassificationHighDim (training) or DenoiseQuadsHighDim")
    if kwargs["dist"] != "gauss" and "dist" not in accepted:
        raise ValueError(f"dist={kwargs['dist']!r} is only available for LinearClassificationCentOut")
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


def boundary_seed(config):
    """The seed of a network's LinearClassificationHighDim boundaries: its configuration's
    `boundary_seed`, or with None its own `member_seed` (each network its own boundaries,
    as the paper's release drew fresh ones for every network). Runs saved before
    boundary_seed existed were trained with 0 (runs.EARLIER_DEFAULTS)."""
    seed = config.get("boundary_seed", 0)
    if seed is not None:
        return seed
    if config.get("member_seed") is None:
        raise ValueError("boundary_seed=None draws each network's boundaries from its own member_seed, "
                         f"which this configuration ({config.get('name', 'unnamed')}) does not have")
    return config["member_seed"]


def boundary_condition(config):
    """σ_min/σ_max of a network's class boundaries, the (n_task, D) matrix of the unit
    normals of its LinearClassificationHighDim task: near 0 when the boundaries leave a
    direction of x* nearly unprobed (0 with fewer tasks than D), 1 when they probe every
    direction alike. NaN for a network without such a task."""
    for env in training_envs(config):
        if isinstance(env, LinearClassificationHighDim):
            n_task, n_dim = env.normals.shape
            if n_task < n_dim:
                return 0.0
            s = np.linalg.svd(env.normals, compute_uv=False)
            return float(s[-1] / s[0])
    return float("nan")


def training_envs(config, n_task=None):
    """The task families of a run, each with its own one-hot rule input when there
    are several (SPEC §2: one family per batch)."""
    names = config["task"] if isinstance(config["task"], list) else [config["task"]]
    if len(names) == 1:
        return [from_config(config, names[0], n_task)]
    eye = np.eye(len(names))
    return [from_config(config, name, n_task, rule_vec=eye[i]) for i, name in enumerate(names)]


def training_env(config):
    """The (first) task family a network was trained on, with its rule input."""
    return training_envs(config)[0]


def decoding_env(config, quads=None, timing=None):
    """The regression task that reads x* out of a trained network, in the input layout
    it was trained with: DenoiseQuads (D = 2), DenoiseQuadsHighDim (D > 2) or
    DenoiseQuadsFreeRT (free-RT networks), with the training noise and the rule input
    of its first task family. `quads` restricts the quadrants / orthants (default all);
    `timing` replaces the training timing."""
    trained = training_env(dict(config, boundary_seed=0))  # read for its rule input only, not its boundaries
    cfg = dict(config, task="DenoiseQuads", corr=0, autocorr=0, dist="gauss")
    if timing is not None:
        cfg["timing"] = timing
    if config["task"] == FREE_RT_TASK:
        name = "DenoiseQuadsFreeRT"
    else:
        name = "DenoiseQuadsHighDim" if config["n_dim"] > 2 else "DenoiseQuads"
    rule_vec = trained.rule_vec if len(trained.rule_vec) else None
    return from_config(cfg, name, rule_vec=rule_vec, **({} if quads is None else {"quad_num": quads}))
