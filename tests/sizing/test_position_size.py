"""Sizing decisions against hand-computed weights, and the fail-safe reasons."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from argus.sizing import Forecast, SizeDecision, SizingConfig, size_from_values, size_position
from argus.sizing.position_size import REASONS

FULL = SizingConfig(kelly_fraction=1.0, allow_full_kelly=True, w_max=10.0)


def test_thorp_example_at_full_kelly_is_1_25():
    # Thorp (2006): m - r = 0.11 - 0.06 = 0.05, s = 0.20 -> f* = 1.25
    d = size_position(Forecast(0.11 - 0.06, 0.20), FULL)
    assert d.weight == pytest.approx(1.25, rel=1e-12)
    assert d.reason == "kelly"


def test_default_is_quarter_kelly_clipped_at_w_max_1():
    d = size_position(Forecast(0.05, 0.20))
    assert d.weight == pytest.approx(0.3125, rel=1e-12)
    assert d.reason == "kelly"
    full = size_position(Forecast(0.05, 0.20), SizingConfig(kelly_fraction=1.0, allow_full_kelly=True))
    assert (full.weight, full.reason) == (1.0, "w_max")  # 1.25 clipped to the default w_max
    assert "clipped from 1.2" in full.detail


def test_full_kelly_config_is_refused_without_the_flag():
    with pytest.raises(ValueError, match="allow_full_kelly"):
        SizingConfig(kelly_fraction=1.0)


def test_cost_and_confidence_shrink_mu_before_kelly():
    # mu_eff = 0.5 * (0.06 - 0.01) = 0.025; quarter Kelly = 0.25 * 0.025 / 0.04 = 0.15625
    d = size_position(Forecast(0.06, 0.20, cost=0.01, confidence=0.5))
    assert d.weight == pytest.approx(0.15625, rel=1e-12)


def test_negative_forecast_sizes_a_short():
    d = size_position(Forecast(-0.06, 0.20, cost=0.01, confidence=0.5))
    assert d.weight == pytest.approx(-0.15625, rel=1e-12)
    assert d.reason == "kelly"


def test_short_is_zero_when_shorting_is_off():
    d = size_position(Forecast(-0.06, 0.20), SizingConfig(allow_short=False))
    assert d == SizeDecision(0.0, "short_not_allowed", d.detail)


def test_vol_target_overlay_caps_kelly_at_target_over_sigma():
    # half Kelly 0.5 * 0.05 / 0.04 = 0.625; target 0.10 / 0.20 = 0.5 binds
    cfg = SizingConfig(kelly_fraction=0.5, target_vol=0.10)
    d = size_position(Forecast(0.05, 0.20), cfg)
    assert d.weight == pytest.approx(0.5, rel=1e-12)
    assert d.reason == "vol_target"
    assert size_position(Forecast(-0.05, 0.20), cfg).weight == pytest.approx(-0.5, rel=1e-12)


def test_vol_target_overlay_that_does_not_bind_leaves_kelly():
    d = size_position(Forecast(0.05, 0.20), SizingConfig(target_vol=0.10))
    assert d.weight == pytest.approx(0.3125, rel=1e-12)
    assert d.reason == "kelly"


def test_vol_target_method_sizes_by_target_over_sigma_times_confidence():
    cfg = SizingConfig(method="vol_target", target_vol=0.10)
    d = size_position(Forecast(0.05, 0.20, confidence=0.8), cfg)
    assert d.weight == pytest.approx(0.4, rel=1e-12)
    assert d.reason == "vol_target"
    assert size_position(Forecast(-0.05, 0.20, confidence=0.8), cfg).weight == pytest.approx(-0.4, rel=1e-12)
    clipped = size_position(Forecast(0.05, 0.05), cfg)  # 0.10 / 0.05 = 2 -> w_max 1
    assert (clipped.weight, clipped.reason) == (1.0, "w_max")


def test_w_max_clips_both_sides():
    cfg = SizingConfig(kelly_fraction=0.5, w_max=0.3)
    assert (
        size_position(Forecast(0.05, 0.2), cfg).weight,
        size_position(Forecast(0.05, 0.2), cfg).reason,
    ) == (
        0.3,
        "w_max",
    )
    assert size_position(Forecast(-0.05, 0.2), cfg).weight == -0.3


def test_data_gap_sizes_zero():
    assert size_position(Forecast(0.05, 0.2), data_gap=True).reason == "data_gap"
    assert size_position(Forecast(0.05, 0.2), data_gap=True).weight == 0.0


def test_missing_forecast_sizes_zero():
    d = size_position(None)
    assert (d.weight, d.reason) == (0.0, "missing_input:forecast")


def test_zero_sigma_sizes_zero():
    d = size_position(Forecast(0.05, 0.0))
    assert (d.weight, d.reason) == (0.0, "zero_sigma")


def test_uncertainty_spike_sizes_zero():
    cfg = SizingConfig(spike_multiple=2.0)
    spike = size_position(Forecast(0.05, 0.51), cfg, sigma_ref=0.25)
    assert (spike.weight, spike.reason) == (0.0, "uncertainty_spike")
    assert "0.51" in spike.detail and "0.25" in spike.detail
    at_limit = size_position(Forecast(0.05, 0.50), cfg, sigma_ref=0.25)  # sigma == 2 x ref is allowed
    assert at_limit.reason == "kelly"
    assert at_limit.weight == pytest.approx(0.25 * 0.05 / 0.25, rel=1e-12)


def test_nan_sigma_ref_is_missing_and_bad_sigma_ref_is_refused():
    assert size_position(Forecast(0.05, 0.2), sigma_ref=math.nan).reason == "missing_input:sigma_ref"
    with pytest.raises(ValueError, match=r"sigma_ref=0\.0: must be > 0"):
        size_position(Forecast(0.05, 0.2), sigma_ref=0.0)


def test_zero_confidence_or_cost_eating_the_edge_sizes_zero():
    assert size_position(Forecast(0.05, 0.2, confidence=0.0)).reason == "no_edge"
    d = size_position(Forecast(0.05, 0.2, cost=0.05))
    assert (d.weight, d.reason) == (0.0, "no_edge")


def test_fail_safe_order_data_gap_first():
    d = size_position(Forecast(0.05, 0.0, confidence=0.0), data_gap=True)
    assert d.reason == "data_gap"


@pytest.mark.parametrize("field", ["mu", "sigma", "edge", "cost", "confidence"])
@pytest.mark.parametrize("missing", [None, math.nan])
def test_size_from_values_treats_none_and_nan_as_missing(field, missing):
    values = {"mu": 0.05, "sigma": 0.2, "edge": 1.0, "cost": 0.0, "confidence": 1.0} | {field: missing}
    d = size_from_values(**values)
    assert (d.weight, d.reason) == (0.0, f"missing_input:{field}")


def test_size_from_values_matches_size_position():
    assert size_from_values(0.06, 0.2, 2.0, 0.01, 0.5) == size_position(Forecast(0.06, 0.2, 2.0, 0.01, 0.5))
    assert size_from_values(0.06, 0.2, data_gap=True).reason == "data_gap"


def test_size_from_values_still_refuses_invalid_values():
    with pytest.raises(ValueError, match=r"sigma=-0\.2: must be >= 0"):
        size_from_values(0.05, -0.2)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"method": "martingale"}, r"method='martingale': must be one of kelly, vol_target"),
        ({"method": "vol_target"}, r"target_vol=None: method 'vol_target' needs"),
        ({"target_vol": 0.0}, r"target_vol=0\.0: must be > 0"),
        ({"w_max": -1.0}, r"w_max=-1\.0: must be > 0"),
        ({"spike_multiple": 0.5}, r"spike_multiple=0\.5: must be >= 1"),
        ({"kelly_fraction": 0.6}, r"kelly_fraction=0\.6: must be in \[0\.1, 0\.5\]"),
        ({"allow_short": 1}, r"allow_short=1: must be a bool"),
    ],
)
def test_bad_config_is_refused(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        SizingConfig(**kwargs)


@given(
    mu=st.floats(-1, 1),
    sigma=st.floats(0, 2),
    cost=st.floats(0, 0.2),
    confidence=st.floats(0, 1),
    c=st.floats(0.10, 0.50),
    w_max=st.floats(0.01, 5),
    target_vol=st.none() | st.floats(0.01, 1),
    method=st.sampled_from(["kelly", "vol_target"]),
    allow_short=st.booleans(),
    sigma_ref=st.none() | st.floats(0.01, 1),
)
def test_any_forecast_gives_a_bounded_weight_in_the_forecast_direction(
    mu, sigma, cost, confidence, c, w_max, target_vol, method, allow_short, sigma_ref
):
    if method == "vol_target" and target_vol is None:
        target_vol = 0.1
    cfg = SizingConfig(method, c, False, target_vol, w_max, 3.0, allow_short)
    f = Forecast(mu, sigma, 0.0, cost, confidence)
    d = size_position(f, cfg, sigma_ref=sigma_ref)
    assert math.isfinite(d.weight)
    assert abs(d.weight) <= w_max
    assert d.reason.split(":")[0] in REASONS
    if d.weight != 0.0:
        assert math.copysign(1.0, d.weight) == math.copysign(1.0, f.mu_net)
        if target_vol is not None:
            assert abs(d.weight) * sigma <= target_vol * (1 + 1e-12)
        if sigma_ref is not None:
            assert sigma <= 3.0 * sigma_ref
    if not allow_short:
        assert d.weight >= 0.0
