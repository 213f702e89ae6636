"""`hud.eval.stats` against known values: Student t and normal quantiles from tables, a Wilson
interval from the literature, pass@k from its closed form, exact sign and permutation tests
counted by hand."""

from __future__ import annotations

import math

import pytest

from hud.eval import stats


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.706204736),
        (0.975, 2, 4.302652730),
        (0.975, 4, 2.776445105),
        (0.975, 10, 2.228138852),
        (0.975, 30, 2.042272456),
        (0.95, 5, 2.015048373),
        (0.995, 3, 5.840909310),
        (0.025, 10, -2.228138852),
    ],
)
def test_t_quantile_matches_tables(p: float, df: int, expected: float) -> None:
    assert stats.t_quantile(p, df) == pytest.approx(expected, abs=1e-8)


def test_distributions() -> None:
    assert stats.incomplete_beta(2, 3, 0.5) == pytest.approx(0.6875, abs=1e-12)
    assert stats.incomplete_beta(0.5, 0.5, 0.5) == pytest.approx(0.5, abs=1e-12)
    assert stats.t_cdf(2.0, 5) == pytest.approx(0.949030260585, abs=1e-10)
    assert stats.t_cdf(0.0, 3) == pytest.approx(0.5)
    assert stats.normal_quantile(0.975) == pytest.approx(1.959963985, abs=1e-8)
    assert stats.t_quantile(0.5, 7) == 0.0
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, 3)


def test_mean_ci_student_t() -> None:
    est = stats.mean_ci([1, 2, 3, 4, 5])
    assert est.value == 3 and est.n == 5
    half = 2.776445105 * math.sqrt(2.5 / 5)
    assert est.low == pytest.approx(3 - half, abs=1e-8)
    assert est.high == pytest.approx(3 + half, abs=1e-8)
    assert est.half_width == pytest.approx(half, abs=1e-8)
    one = stats.mean_ci([0.7])
    assert one.value == 0.7 and one.low is None and one.half_width is None
    same = stats.mean_ci([1.0, 1.0, 1.0])
    assert (same.low, same.high) == (1.0, 1.0)
    with pytest.raises(ValueError):
        stats.mean_ci([])


def test_mean_reward_averages_tasks_not_attempts() -> None:
    # task a: four attempts averaging 1.0; task b: one attempt at 0.0 -> 0.5, not 0.8
    est = stats.mean_reward({"a": [1, 1, 1, 1], "b": [0], "empty": []})
    assert est.value == pytest.approx(0.5) and est.n == 2
    half = 12.706204736 * math.sqrt(0.5 / 2)
    assert est.high == pytest.approx(0.5 + half, abs=1e-8)


def test_wilson_interval_known_value() -> None:
    est = stats.wilson(8, 10)
    assert est.value == 0.8
    assert est.low == pytest.approx(0.4902, abs=5e-5)
    assert est.high == pytest.approx(0.9433, abs=5e-5)
    zero = stats.wilson(0, 5)
    assert zero.low == 0.0 and 0.0 < (zero.high or 0) < 0.6
    assert stats.success_rate([1.0, 0.9999999999, 0.5, 0.0]).value == 0.5
    assert stats.success_rate([0.5, 0.6], threshold=0.5).value == 1.0


def test_pass_at_k_unbiased_estimator() -> None:
    assert stats.pass_at_k_task(5, 2, 1) == pytest.approx(0.4)
    assert stats.pass_at_k_task(5, 2, 2) == pytest.approx(1 - 3 / 10)
    assert stats.pass_at_k_task(10, 0, 3) == 0.0
    assert stats.pass_at_k_task(4, 1, 4) == 1.0
    assert stats.pass_at_k_task(200, 7, 10) == pytest.approx(
        1 - math.comb(193, 10) / math.comb(200, 10), rel=1e-12
    )
    with pytest.raises(ValueError):
        stats.pass_at_k_task(2, 1, 3)
    rewards = {"a": [1, 0, 0, 0, 1], "b": [0, 0, 0, 0, 0], "short": [1]}
    assert stats.pass_at_k(rewards, 1) == pytest.approx(((0.4 + 0 + 1) / 3, 3))
    assert stats.pass_at_k(rewards, 2) == pytest.approx(((0.7 + 0) / 2, 2))
    assert stats.pass_at_k(rewards, 6) is None
    assert stats.pass_at_k_counts([(5, 2), (5, 0), (1, 1)], 2) == stats.pass_at_k(rewards, 2)


def test_sign_and_permutation_tests_exact() -> None:
    assert stats.sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert stats.sign_test(5, 5) == 1.0
    assert stats.sign_test(0, 0) is None
    assert stats.permutation_test([1, 1, 1]) == pytest.approx(2 / 8)
    assert stats.permutation_test([1, 2, 3, 4]) == pytest.approx(2 / 16)
    assert stats.permutation_test([0.0, 0.0]) is None
    # equal magnitudes: the permutation test is the sign test
    many = [1.0] * 15 + [-1.0] * 5
    assert stats.permutation_test(many) == pytest.approx(stats.sign_test(15, 5))
    # 2^8 flips counted by hand: |sum| >= observed for 2 of 256 with distinct powers of two
    assert stats.permutation_test([2.0**i for i in range(8)]) == pytest.approx(2 / 256)
    # too many distinct sums: Monte Carlo with a fixed seed (the same p every time), and for
    # many differences the normal approximation
    spread = [0.1 * i + 0.013 * (i % 3) for i in range(1, 37)] + [-1.5, -2.25]
    exact = stats.permutation_test(spread[:14])
    assert stats.permutation_test(spread[:14], max_work=64) == pytest.approx(exact, abs=0.02)
    first = stats.permutation_test(spread, max_work=1000)
    assert first == stats.permutation_test(spread, max_work=1000)
    assert first is not None and 0 < first < 0.001
    wide = [1.0] * 60 + [-1.0] * 40 + [0.5, -0.25]
    normal = stats.permutation_test(wide, max_work=10)
    assert normal == pytest.approx(stats.permutation_test(wide), abs=0.01)
    assert normal == pytest.approx(math.erfc(20.25 / math.sqrt(100.3125) / math.sqrt(2)))


def test_paired_comparison() -> None:
    a = {"t1": [1, 1], "t2": [0], "t3": [1]}
    b: dict[str, list[float]] = {"t1": [0], "t2": [0], "t3": [0.5], "t4": [1]}
    result = stats.paired(a, b)
    assert result is not None
    assert (result.wins, result.ties, result.losses, result.n) == (2, 1, 0, 3)
    assert result.difference.value == pytest.approx(0.5)
    assert result.sign_p == pytest.approx(0.5)
    assert result.permutation_p == pytest.approx(0.5)
    reverse = stats.paired(b, a)
    assert reverse is not None and (reverse.wins, reverse.losses) == (0, 2)
    assert reverse.difference.value == pytest.approx(-0.5)
    assert stats.paired({"x": [1]}, {"y": [1]}) is None
    means = stats.paired_means({"t1": 1.0, "t2": 0.0, "t3": 1.0}, {"t1": 0.0, "t2": 0.0, "t3": 0.5})
    assert means == result
