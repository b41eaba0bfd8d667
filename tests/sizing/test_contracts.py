import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from argus.sizing import max_loss_per_contract, option_contracts


def test_contracts_are_the_floor_of_budget_over_max_loss():
    # (5 - 1.5) x 100 = 350 per contract; 1000 / 350 = 2.86
    assert max_loss_per_contract(5.0, 1.5) == 350.0
    assert option_contracts(1000.0, 5.0, 1.5) == 2


def test_budget_exactly_a_multiple_buys_that_many():
    assert option_contracts(700.0, 5.0, 1.5) == 2
    assert option_contracts(699.99, 5.0, 1.5) == 1


def test_binary_float_noise_does_not_lose_a_contract():
    # 1.0 - 0.7 = 0.30000000000000004, so 90 / 30.000000000000004 = 2.9999999999999996
    assert option_contracts(90.0, 1.0, 0.7) == 3


def test_multiplier_is_used():
    assert option_contracts(1000.0, 5.0, 1.5, multiplier=10.0) == 28  # 1000 / 35 = 28.57


def test_zero_budget_gives_zero_contracts():
    assert option_contracts(0.0, 5.0, 1.5) == 0


def test_budget_below_one_contract_gives_zero():
    assert option_contracts(349.0, 5.0, 1.5) == 0


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((1000.0, 2.0, 2.0), r"width=2\.0: must be > credit=2\.0"),
        ((1000.0, 1.0, 2.0), r"width=1\.0: must be > credit=2\.0"),
        ((1000.0, 0.0, 1.0), r"width=0\.0: must be > 0"),
        ((1000.0, 5.0, 0.0), r"credit=0\.0: must be > 0"),
        ((1000.0, 5.0, -1.0), r"credit=-1\.0: must be > 0"),
        ((1000.0, 5.0, 1.0, 0.0), r"multiplier=0\.0: must be > 0"),
        ((-1.0, 5.0, 1.0), r"risk_budget=-1\.0: must be >= 0"),
        ((float("nan"), 5.0, 1.0), r"risk_budget=nan: must be finite"),
    ],
)
def test_bad_spread_or_budget_is_refused(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        option_contracts(*args)


@given(
    budget=st.floats(0, 1e7),
    width=st.floats(0.05, 100),
    credit_share=st.floats(0.01, 0.99),
    multiplier=st.sampled_from([1.0, 10.0, 100.0]),
)
def test_contracts_never_risk_more_than_the_budget(budget, width, credit_share, multiplier):
    credit = width * credit_share
    if not credit < width:
        return
    n = option_contracts(budget, width, credit, multiplier)
    loss = max_loss_per_contract(width, credit, multiplier)
    assert n >= 0
    assert n * loss <= budget * (1 + 1e-9)
    assert (n + 1) * loss > budget * (1 - 1e-9)
    assert n == math.floor(budget / loss) or n == math.floor(budget / loss) + 1
