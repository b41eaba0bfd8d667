"""Kelly formulas against the published values in REFERENCES.md (Thorp 2006) and a scipy optimiser."""

import math

import pytest
from scipy.optimize import minimize_scalar

from argus.sizing import (
    check_kelly_fraction,
    fractional_kelly,
    kelly_binary,
    kelly_full,
    kelly_growth,
)

# Thorp (2006) §7: m = 0.11, r = 0.06, s = 0.20.
M, R, S = 0.11, 0.06, 0.20


def test_thorp_full_kelly_is_1_25():
    assert kelly_full(M, S, rate=R) == pytest.approx(1.25, rel=1e-12)


def test_thorp_growth_at_full_and_half_kelly():
    assert kelly_growth(1.25, M, S, R) == pytest.approx(0.09125, rel=1e-12)
    assert kelly_growth(0.625, M, S, R) == pytest.approx(0.0834375, rel=1e-12)
    assert round(kelly_growth(0.625, M, S, R), 5) == 0.08344  # as REFERENCES.md prints it


def test_growth_at_twice_kelly_falls_back_to_the_riskless_rate():
    assert kelly_growth(2.5, M, S, R) == pytest.approx(R, rel=1e-12)


def test_full_kelly_maximises_growth_per_scipy():
    best = minimize_scalar(
        lambda f: -kelly_growth(f, M, S, R), bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}
    )
    assert best.x == pytest.approx(kelly_full(M, S, R), abs=1e-7)


def test_even_money_bet_with_p_0_6_gives_0_2():
    assert kelly_binary(0.6) == pytest.approx(0.2, abs=1e-15)


def test_binary_kelly_maximises_expected_log_wealth_per_scipy():
    p, b = 0.55, 2.0
    best = minimize_scalar(
        lambda f: -(p * math.log(1 + b * f) + (1 - p) * math.log(1 - f)), bounds=(0, 0.99), method="bounded"
    )
    assert best.x == pytest.approx(kelly_binary(p, b), abs=1e-6)
    assert kelly_binary(p, b) == pytest.approx(0.55 - 0.45 / 2.0)


def test_binary_kelly_without_edge_is_negative():
    assert kelly_binary(0.4) < 0


def test_fractional_kelly_defaults_to_a_quarter():
    assert fractional_kelly(0.05, 0.20) == pytest.approx(0.3125, rel=1e-12)
    assert fractional_kelly(M, S, 0.5, R) == pytest.approx(0.625, rel=1e-12)
    assert fractional_kelly(M, S, 0.10, R) == pytest.approx(0.125, rel=1e-12)


def test_full_kelly_is_refused_unless_explicitly_allowed():
    with pytest.raises(ValueError, match=r"kelly_fraction=1\.0.*allow_full_kelly=True"):
        fractional_kelly(M, S, 1.0, R)
    assert fractional_kelly(M, S, 1.0, R, allow_full_kelly=True) == pytest.approx(1.25, rel=1e-12)


@pytest.mark.parametrize("c", [0.0, 0.05, 0.0999, 0.5001, 0.75, 1.5, -0.25, float("nan"), float("inf")])
def test_kelly_fraction_outside_the_range_is_refused(c):
    with pytest.raises(ValueError, match="kelly_fraction"):
        check_kelly_fraction(c, allow_full_kelly=True)


@pytest.mark.parametrize("c", [0.10, 0.25, 0.50])
def test_kelly_fraction_range_is_inclusive(c):
    assert check_kelly_fraction(c) == c


def test_kelly_of_zero_sigma_is_refused():
    with pytest.raises(ValueError, match=r"sigma=0.*> 0"):
        kelly_full(0.05, 0.0)


def test_binary_probability_outside_0_1_is_refused():
    with pytest.raises(ValueError, match=r"p=1\.2.*\[0, 1\]"):
        kelly_binary(1.2)
