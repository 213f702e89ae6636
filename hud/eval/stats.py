"""Statistics for comparing agents on a taskset: the numbers a leaderboard shows.

Pure functions over plain numbers (no numpy, no I/O), so the platform's pages, `hud view` and
scripts all compute the same figures. The methods, stated once:

- **Mean reward**: the mean of the per-task mean rewards (the task is the sampling unit: several
  attempts at one task are not independent evidence), with a two-sided **Student t** interval
  over tasks, ``mean ± t(1 - α/2, n - 1) · s / √n``. One task gives no interval.
- **Success rate**: the share of attempts whose reward reaches ``threshold`` (default 1.0), with
  a **Wilson score** interval (well behaved at 0 %, 100 % and for a handful of attempts).
- **pass@k**: the unbiased estimator of Chen et al. (2021), per task
  ``1 - C(n - c, k) / C(n, k)`` for ``n`` attempts of which ``c`` succeeded, averaged over the
  tasks with at least ``k`` attempts.
- **Paired comparison** of agents A and B on the tasks both ran: per task ``d = mean_A - mean_B``;
  the mean of ``d`` with a Student t interval; wins / ties / losses (ties: ``|d| <= tie``); an
  exact two-sided **sign test** p-value (ties dropped) and a two-sided **paired permutation
  test** (sign flips of ``d``; exact by counting the flipped sums when that is cheap, else
  2,000 random flips with a fixed seed, or for many tasks the normal approximation).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: Rewards at or above this count as a success unless told otherwise.
SUCCESS = 1.0
#: Slack for float rewards (a reward of 0.9999999999 is a success at 1.0).
EPSILON = 1e-9
#: The exact permutation test's budget (dictionary steps, ~0.05 s); beyond, an estimate.
MAX_WORK = 100_000
#: Up to this many differences an inexact permutation test samples flips; beyond, the normal
#: approximation (by then an excellent one).
MONTE_CARLO_MAX = 40
#: Grid the differences are put on for the exact permutation test.
GRID = 10**9
PERMUTATION_SAMPLES = 2_000
PERMUTATION_SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its two-sided interval (``low``/``high`` None when ``n`` is too
    small to have one) at confidence ``level``, over ``n`` units."""

    value: float
    low: float | None
    high: float | None
    n: int
    level: float

    @property
    def half_width(self) -> float | None:
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class Paired:
    """Agent A against agent B on the ``n`` tasks both ran (``difference`` = A minus B)."""

    difference: Estimate
    wins: int
    ties: int
    losses: int
    sign_p: float | None
    permutation_p: float | None

    @property
    def n(self) -> int:
        return self.difference.n


# -- distributions -----------------------------------------------------------------------------
def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("df must be positive")
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    high = 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    low = 0.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


def normal_quantile(p: float) -> float:
    """The ``p`` quantile of the standard normal (bisection on ``erfc``)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    low, high = -40.0, 40.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


# -- one agent ---------------------------------------------------------------------------------
def mean_ci(values: Sequence[float], level: float = 0.95) -> Estimate:
    """The mean of ``values`` with a two-sided Student t interval (none for fewer than two)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(mean, None, None, n, level)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile(1.0 - (1.0 - level) / 2.0, n - 1) * math.sqrt(variance / n)
    return Estimate(mean, mean - half, mean + half, n, level)


def per_task_means(rewards: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Each task's mean reward (tasks with no attempts left out)."""
    return {task: math.fsum(r) / len(r) for task, r in rewards.items() if r}


def mean_reward(rewards: Mapping[str, Sequence[float]], level: float = 0.95) -> Estimate:
    """The mean of per-task mean rewards with a Student t interval over tasks."""
    means = per_task_means(rewards)
    if not means:
        raise ValueError("mean_reward needs at least one attempt")
    return mean_ci(list(means.values()), level)


def is_success(reward: float, threshold: float = SUCCESS) -> bool:
    return reward >= threshold - EPSILON


def wilson(successes: int, n: int, level: float = 0.95) -> Estimate:
    """A proportion with its Wilson score interval."""
    if n <= 0:
        raise ValueError("wilson needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError("successes must be between 0 and n")
    z = normal_quantile(1.0 - (1.0 - level) / 2.0)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n, level)


def success_rate(
    rewards: Iterable[float], threshold: float = SUCCESS, level: float = 0.95
) -> Estimate:
    """The share of attempts reaching ``threshold``, with a Wilson interval."""
    values = list(rewards)
    return wilson(sum(is_success(r, threshold) for r in values), len(values), level)


def pass_at_k_task(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one task: ``1 - C(n - c, k) / C(n, k)`` (needs ``n >= k``)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} attempts, got {n}")
    if not 0 <= c <= n:
        raise ValueError("c must be between 0 and n")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k(
    rewards: Mapping[str, Sequence[float]], k: int, threshold: float = SUCCESS
) -> tuple[float, int] | None:
    """Mean pass@k over the tasks with at least ``k`` attempts, and how many tasks that is
    (None when no task has ``k`` attempts)."""
    return pass_at_k_counts(
        ((len(r), sum(is_success(x, threshold) for x in r)) for r in rewards.values()), k
    )


def pass_at_k_counts(counts: Iterable[tuple[int, int]], k: int) -> tuple[float, int] | None:
    """`pass_at_k` from per-task ``(attempts, successes)`` (what a SQL aggregate gives)."""
    scores = [pass_at_k_task(n, c, k) for n, c in counts if n >= k]
    if not scores:
        return None
    return math.fsum(scores) / len(scores), len(scores)


# -- two agents --------------------------------------------------------------------------------
def sign_test(wins: int, losses: int) -> float | None:
    """The exact two-sided sign test p-value of ``wins`` against ``losses`` (ties dropped
    before calling); None when there is nothing to test."""
    n = wins + losses
    if n == 0:
        return None
    low = min(wins, losses)
    tail = math.fsum(math.comb(n, i) for i in range(low + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def permutation_test(
    differences: Sequence[float],
    *,
    max_work: int = MAX_WORK,
    samples: int = PERMUTATION_SAMPLES,
    seed: int = PERMUTATION_SEED,
) -> float | None:
    """Two-sided paired permutation test of a zero mean difference: the share of the 2^n sign
    flips of ``differences`` whose absolute sum is at least the observed one. None without a
    nonzero difference. Computed, in order of preference:

    1. exactly: the differences are put on a 1e-9 grid and the flipped sums counted by dynamic
       programming over the sums reached (fast when rewards take few values, as they usually
       do), while that costs at most ``max_work`` steps;
    2. else, up to `MONTE_CARLO_MAX` differences, from ``samples`` random flips drawn from
       ``random.Random(seed)``: p = ``(hits + 1) / (samples + 1)``;
    3. else by the normal approximation of the flipped sum (mean 0, variance the sum of squares).
    """
    grid = [round(d * GRID) for d in differences]
    values = [abs(v) for v in grid if v != 0]
    if not values:
        return None
    observed = abs(sum(grid))
    counts: dict[int, int] = {0: 1}
    work = 0
    for v in values:
        step: dict[int, int] = {}
        for total, c in counts.items():
            step[total + v] = step.get(total + v, 0) + c
            step[total - v] = step.get(total - v, 0) + c
        counts = step
        work += len(counts)
        if work > max_work:
            break
    else:
        hits = sum(c for total, c in counts.items() if abs(total) >= observed)
        return hits / 2 ** len(values)
    if len(values) <= MONTE_CARLO_MAX:
        rng = random.Random(seed)
        whole = sum(values)
        hits = 0
        for _ in range(samples):
            flips = rng.getrandbits(len(values))
            flipped = sum(v for i, v in enumerate(values) if flips >> i & 1)
            hits += abs(whole - 2 * flipped) >= observed
        return (hits + 1) / (samples + 1)
    spread = math.sqrt(math.fsum(float(v) * v for v in values))
    return min(1.0, math.erfc(observed / spread / math.sqrt(2.0)))


def paired(
    a: Mapping[str, Sequence[float]],
    b: Mapping[str, Sequence[float]],
    *,
    level: float = 0.95,
    tie: float = EPSILON,
) -> Paired | None:
    """Agent A against agent B on the tasks both attempted (per-task mean rewards); None when
    they share no task."""
    return paired_means(per_task_means(a), per_task_means(b), level=level, tie=tie)


def paired_means(
    mean_a: Mapping[str, float],
    mean_b: Mapping[str, float],
    *,
    level: float = 0.95,
    tie: float = EPSILON,
) -> Paired | None:
    """`paired` from each agent's per-task mean rewards."""
    shared = sorted(set(mean_a) & set(mean_b))
    if not shared:
        return None
    differences = [mean_a[t] - mean_b[t] for t in shared]
    wins = sum(d > tie for d in differences)
    losses = sum(d < -tie for d in differences)
    ties = len(differences) - wins - losses
    exact = [0.0 if abs(d) <= tie else d for d in differences]
    return Paired(
        difference=mean_ci(differences, level),
        wins=wins,
        ties=ties,
        losses=losses,
        sign_p=sign_test(wins, losses),
        permutation_p=permutation_test(exact),
    )
