import dataclasses

import pytest

from argus.sizing import Forecast


def test_forecast_holds_floats():
    f = Forecast(1, 0.2, 3, 0, 1)
    assert (f.mu, f.sigma, f.edge, f.cost, f.confidence) == (1.0, 0.2, 3.0, 0.0, 1.0)
    assert all(type(v) is float for v in dataclasses.astuple(f))


def test_forecast_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Forecast(0.05, 0.2).mu = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"sigma": -0.1}, r"sigma=-0\.1: must be >= 0"),
        ({"confidence": 1.5}, r"confidence=1\.5: must be in \[0, 1\]"),
        ({"confidence": -0.01}, r"confidence=-0\.01: must be in \[0, 1\]"),
        ({"cost": -0.001}, r"cost=-0\.001: must be >= 0"),
        ({"mu": float("inf")}, r"mu=inf: must be finite"),
        ({"mu": float("nan")}, r"mu=nan: must be finite"),
        ({"edge": float("-inf")}, r"edge=-inf: must be finite"),
        ({"sigma": None}, r"sigma=None: must be a finite number"),
        ({"mu": True}, r"mu=True: must be a finite number"),
        ({"mu": "0.1"}, r"mu='0.1': must be a finite number"),
    ],
)
def test_bad_forecast_is_refused_naming_field_value_and_rule(kwargs, pattern):
    args = {"mu": 0.05, "sigma": 0.2, "edge": 0.0, "cost": 0.0, "confidence": 1.0} | kwargs
    with pytest.raises(ValueError, match=pattern):
        Forecast(**args)


def test_cost_shrinks_mu_toward_zero_in_either_direction():
    assert Forecast(0.05, 0.2, cost=0.01).mu_net == pytest.approx(0.04)
    assert Forecast(-0.05, 0.2, cost=0.01).mu_net == pytest.approx(-0.04)


def test_cost_larger_than_mu_gives_zero_not_a_flip():
    assert Forecast(0.005, 0.2, cost=0.01).mu_net == 0.0
    assert Forecast(-0.005, 0.2, cost=0.01).mu_net == 0.0


def test_confidence_scales_net_mu():
    assert Forecast(0.06, 0.2, cost=0.01, confidence=0.5).mu_eff == pytest.approx(0.025)
    assert Forecast(0.06, 0.2, confidence=0.0).mu_eff == 0.0
