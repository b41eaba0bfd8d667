"""Option contracts from a risk budget: ⌊risk budget / max loss per contract⌋.

For a vertical credit spread the most one contract can lose is (width − credit) × multiplier, the
width and the credit in price points per share (credit = short.bid − long.ask at the natural price,
as in `argus.options.spreads`). Sizing by it means that if every contract expires at its maximum loss
the loss is still within the budget.

Prices are decimals held in binary floats (1.0 − 0.7 = 0.30000000000000004), so a quotient within
1e-9 (relative) of an integer counts as that integer: a budget of 90 with a max loss of 30 buys 3
contracts, not 2.
"""

from __future__ import annotations

import math

from argus.sizing import _checks

#: Shares per US equity/index option contract.
DEFAULT_MULTIPLIER = 100.0
_REL_TOL = 1e-9


def max_loss_per_contract(width: float, credit: float, multiplier: float = DEFAULT_MULTIPLIER) -> float:
    """(width − credit) × multiplier; refuses width <= credit and non-positive width, credit, multiplier."""
    width = _checks.positive("width", width)
    credit = _checks.positive("credit", credit)
    multiplier = _checks.positive("multiplier", multiplier)
    if width <= credit:
        raise ValueError(
            f"width={width!r}: must be > credit={credit!r} (a spread cannot lose less than nothing)"
        )
    return (width - credit) * multiplier


def option_contracts(
    risk_budget: float, width: float, credit: float, multiplier: float = DEFAULT_MULTIPLIER
) -> int:
    """⌊risk_budget / ((width − credit) × multiplier)⌋ contracts. A zero budget gives 0 contracts (the
    fail-safe size); a negative or non-finite budget is refused."""
    budget = _checks.non_negative("risk_budget", risk_budget)
    loss = max_loss_per_contract(width, credit, multiplier)
    quotient = budget / loss
    n = math.floor(quotient)
    if quotient - n >= 1.0 - _REL_TOL * max(1.0, quotient):
        n += 1
    return int(n)
