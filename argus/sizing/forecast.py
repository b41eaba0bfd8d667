"""`Forecast`: what a strategy believes about one position's next period, the input of sizing.

Fields (all in the same units and over the same horizon, e.g. annualised; the Kelly weight μ/σ² does
not depend on the horizon as long as μ and σ² are both per that horizon):

- `mu`: expected excess return of a long unit position over the financing rate (Thorp's m − r),
  before costs. Its sign is the forecast direction.
- `sigma`: forecast volatility of that return, >= 0.
- `edge`: the strategy's raw signal in its own units (a z-score, IV − RV in vol points, ...). Sizing
  does not use it; it travels with the forecast so the harness can log why a position was wanted.
- `cost`: expected round-trip cost of taking the position, in the units of `mu`, >= 0. It always
  works against the trade: it shrinks |mu|, never flips its sign.
- `confidence`: in [0, 1]; how much of the (net) forecast to believe. 0 means no position.

Bad values are refused at the boundary (DESIGN.md §1.6) with a `ValueError` naming the field, the
value and the rule. A *missing* value (NaN or None from a data gap) is not a bug but a data condition:
pass the raw numbers to `argus.sizing.size_from_values`, which sizes to zero and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from argus.sizing import _checks


@dataclass(frozen=True)
class Forecast:
    """One position's forecast: expected excess return, volatility, raw edge, cost and confidence."""

    mu: float
    sigma: float
    edge: float = 0.0
    cost: float = 0.0
    confidence: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", _checks.number("mu", self.mu))
        object.__setattr__(self, "sigma", _checks.non_negative("sigma", self.sigma))
        object.__setattr__(self, "edge", _checks.number("edge", self.edge))
        object.__setattr__(self, "cost", _checks.non_negative("cost", self.cost))
        confidence = _checks.number("confidence", self.confidence)
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence={self.confidence!r}: must be in [0, 1]")
        object.__setattr__(self, "confidence", confidence)

    @property
    def mu_net(self) -> float:
        """μ after costs: sign(μ)·max(|μ| − cost, 0). Costs shrink the forecast; they never flip it."""
        return _signed(max(abs(self.mu) - self.cost, 0.0), self.mu)

    @property
    def mu_eff(self) -> float:
        """The μ that sizing uses: confidence · μ_net (shrinkage toward zero by confidence)."""
        return self.confidence * self.mu_net


def _signed(magnitude: float, sign_of: float) -> float:
    """magnitude with the sign of `sign_of`; 0.0 (never −0.0) when the magnitude is zero."""
    if magnitude == 0.0:
        return 0.0
    return magnitude if sign_of >= 0.0 else -magnitude
