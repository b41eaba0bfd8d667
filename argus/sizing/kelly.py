"""The Kelly criterion for a continuous-time position and for a binary bet.

Kelly (1956) showed that betting the fraction of capital that maximises the expected log of wealth
maximises the long-run growth rate. For a position whose excess return over the financing rate r has
drift μ − r and volatility σ (geometric Brownian motion), Thorp (2006, "The Kelly criterion in
blackjack, sports betting and the stock market", §7) gives

    f* = (μ − r) / σ²                  (full Kelly)
    g(f) = r + f·(μ − r) − f²·σ² / 2     (growth rate at fraction f)

so g(f*) = r + (μ − r)² / (2σ²); half Kelly earns 3/4 of the excess growth with half the volatility.
Thorp's example: μ = 0.11, r = 0.06, σ = 0.20 → f* = 1.25, g = 0.09125, g(f*/2) = 0.0834375.

Forecasts are noisy and over-betting is far worse than under-betting (g falls to r at 2f* and below it
beyond), so Argus bets a *fraction* c of Kelly: c in [0.10, 0.50], a quarter by default. Full Kelly
(c = 1.0) is refused unless the caller says so explicitly (`allow_full_kelly=True`); any other c
outside [0.10, 0.50] is refused.

For a binary bet that wins `odds` per unit staked with probability p and loses the stake otherwise,
f* = p − (1 − p) / odds (an even-money bet with p = 0.6 gives 0.2).
"""

from __future__ import annotations

from argus.sizing import _checks

#: Quarter Kelly, the default fraction.
DEFAULT_KELLY_FRACTION = 0.25
#: The allowed range of fractional Kelly (inclusive); 1.0 is allowed only when asked for explicitly.
KELLY_FRACTION_RANGE = (0.10, 0.50)


def check_kelly_fraction(c: object, *, allow_full_kelly: bool = False) -> float:
    """`c` as a float if it is an allowed Kelly fraction, else a ValueError saying why."""
    value = _checks.number("kelly_fraction", c)
    lo, hi = KELLY_FRACTION_RANGE
    if lo <= value <= hi:
        return value
    if value == 1.0:
        if allow_full_kelly:
            return value
        raise ValueError(
            "kelly_fraction=1.0: full Kelly is refused unless allow_full_kelly=True "
            f"(use a fraction in [{lo}, {hi}]; {DEFAULT_KELLY_FRACTION} is the default)"
        )
    raise ValueError(f"kelly_fraction={c!r}: must be in [{lo}, {hi}] (or 1.0 with allow_full_kelly=True)")


def kelly_full(mu: float, sigma: float, rate: float = 0.0) -> float:
    """Full Kelly fraction f* = (μ − r) / σ² (Thorp 2006); σ must be > 0."""
    mu = _checks.number("mu", mu)
    sigma = _checks.positive("sigma", sigma)
    rate = _checks.number("rate", rate)
    return (mu - rate) / (sigma * sigma)


def fractional_kelly(
    mu: float,
    sigma: float,
    c: float = DEFAULT_KELLY_FRACTION,
    rate: float = 0.0,
    *,
    allow_full_kelly: bool = False,
) -> float:
    """c · (μ − r) / σ², with c checked by `check_kelly_fraction`."""
    c = check_kelly_fraction(c, allow_full_kelly=allow_full_kelly)
    return c * kelly_full(mu, sigma, rate)


def kelly_growth(f: float, mu: float, sigma: float, rate: float = 0.0) -> float:
    """Expected log-growth rate g(f) = r + f·(μ − r) − f²σ²/2 of holding fraction f (Thorp 2006)."""
    f = _checks.number("f", f)
    mu = _checks.number("mu", mu)
    sigma = _checks.non_negative("sigma", sigma)
    rate = _checks.number("rate", rate)
    return rate + f * (mu - rate) - 0.5 * f * f * sigma * sigma


def kelly_binary(p: float, odds: float = 1.0) -> float:
    """Kelly fraction of a bet paying `odds` per unit with probability p: f* = p − (1 − p) / odds.

    Negative when the bet has no edge (do not bet, or take the other side if that is possible)."""
    p = _checks.number("p", p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p!r}: must be in [0, 1]")
    odds = _checks.positive("odds", odds)
    return p - (1.0 - p) / odds
