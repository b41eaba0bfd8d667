"""Capital allocation across strategies and plays, with the reason for every number.

`AllocationEngine(config).allocate(equity, requested, current, breached=..., risk=...)` turns the
weights the strategies ask for into weights the book may hold. A weight is a signed fraction of equity;
a *play* is one position of one strategy, keyed by `(strategy, play)`, so the same instrument traded by
two strategies is two plays. Keys are processed in sorted order and every sum is `math.fsum` (exactly
rounded, so independent of order): the same inputs in any dict order give the same bytes.

Caps (all fractions of equity, `AllocationConfig`):

- `per_play_cap` (default 0.07): |w| of one play;
- `strategy_budgets[s]` (or `default_strategy_budget`; None = no budget): Σ|w| over a strategy's plays;
- `gross_cap`: Σ|w| over the whole book;
- `max_change` (None = off): |w − current| of one play per rebalance (anti-churn);
- no capital for a strategy that broke its risk caps (`breached`, or `risk[s].breached`).

The rule, in order (keys requested or currently held; a held play that is not requested is requested
at 0):

1. A breached strategy's plays go to 0 at once, whatever `max_change` says: a risk cap outranks
   anti-churn (reason `strategy_breached_risk_cap`).
2. Targets: the request clipped to ±`per_play_cap` (`per_play_cap`); then, per strategy, scaled by one
   factor so its Σ|w| fits its budget (`strategy_budget`); then the whole book scaled by one factor to
   fit `gross_cap` (`gross_cap`). Scaling is proportional, so the mix of each group is kept.
3. Max change: each play moves from its current weight toward its target by at most `max_change`
   (`max_change`), inside [−per_play_cap, per_play_cap]. If the current weight is so far outside the
   per-play cap that the cap cannot be reached within max_change, the play goes to the cap: caps win.
4. Moving some plays slower can leave a group over its cap (one play is cut slowly while another
   grows at full speed). For each strategy, then for the book: if Σ|w| exceeds the cap, every play of
   the group is pulled back toward the smallest |w| it may reach this rebalance (its weight within
   max_change of current that is nearest 0) by the same fraction λ of the way, the smallest λ that
   fits; reasons `strategy_budget` and `gross_cap`. If even those smallest weights exceed the cap
   (only possible when the current book breaks the cap), they are scaled down proportionally to fit,
   beyond max_change: caps win again.

Guarantees (tested with hypothesis): every output satisfies |w| <= per_play_cap, Σ|w| per strategy
<= its budget, Σ|w| <= gross_cap, breached strategies hold 0, and, when the current book itself keeps
the caps, |w − current| <= max_change for every play of a strategy in good standing. Sums are
compared exactly (fsum); the last ulp is trimmed where rounding would overshoot a cap.

A line's `reason` is the last rule that changed its number (`requested` if none did); `reasons` lists
all of them in order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from argus.sizing import _checks

REASONS = (
    "requested",
    "per_play_cap",
    "strategy_budget",
    "gross_cap",
    "max_change",
    "strategy_breached_risk_cap",
)

Key = tuple[str, str]


@dataclass(frozen=True)
class StrategyRisk:
    """A strategy's risk state: current drawdown from its peak and the drawdown it may not exceed,
    both positive fractions (0.12 = 12 % below peak). Breached when drawdown > limit; a NaN drawdown
    (unknown risk) counts as breached — fail safe."""

    drawdown: float
    drawdown_limit: float

    def __post_init__(self) -> None:
        if not (isinstance(self.drawdown, float) and math.isnan(self.drawdown)):
            object.__setattr__(self, "drawdown", _checks.non_negative("drawdown", self.drawdown))
        object.__setattr__(self, "drawdown_limit", _checks.positive("drawdown_limit", self.drawdown_limit))

    @property
    def breached(self) -> bool:
        return math.isnan(self.drawdown) or self.drawdown > self.drawdown_limit


@dataclass(frozen=True)
class AllocationConfig:
    """Caps of the allocation, as fractions of equity (module docstring). `strategy_budgets` may be
    given as a mapping; it is stored as a tuple of (strategy, budget) pairs sorted by name."""

    per_play_cap: float = 0.07
    gross_cap: float = 1.0
    strategy_budgets: Mapping[str, float] | tuple[tuple[str, float], ...] = ()
    default_strategy_budget: float | None = None
    max_change: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_play_cap", _checks.positive("per_play_cap", self.per_play_cap))
        object.__setattr__(self, "gross_cap", _checks.positive("gross_cap", self.gross_cap))
        pairs = (
            self.strategy_budgets.items()
            if isinstance(self.strategy_budgets, Mapping)
            else self.strategy_budgets
        )
        budgets: dict[str, float] = {}
        for pair in pairs:
            name, value = pair
            if not isinstance(name, str):
                raise ValueError(f"strategy_budgets key {name!r}: must be a str")
            if name in budgets:
                raise ValueError(f"strategy_budgets[{name!r}]: given twice")
            budgets[name] = _checks.non_negative(f"strategy_budgets[{name!r}]", value)
        object.__setattr__(self, "strategy_budgets", tuple(sorted(budgets.items())))
        if self.default_strategy_budget is not None:
            value = _checks.non_negative("default_strategy_budget", self.default_strategy_budget)
            object.__setattr__(self, "default_strategy_budget", value)
        if self.max_change is not None:
            object.__setattr__(self, "max_change", _checks.positive("max_change", self.max_change))

    def budget_for(self, strategy: str) -> float | None:
        """The strategy's budget: its own, else the default, else None (no budget but the gross cap)."""
        for name, value in self.strategy_budgets:  # type: ignore[misc]
            if name == strategy:
                return value
        return self.default_strategy_budget

    def to_dict(self) -> dict:
        return {
            "per_play_cap": self.per_play_cap,
            "gross_cap": self.gross_cap,
            "strategy_budgets": {name: value for name, value in self.strategy_budgets},  # type: ignore[misc]
            "default_strategy_budget": self.default_strategy_budget,
            "max_change": self.max_change,
        }


@dataclass(frozen=True)
class AllocationLine:
    """One play's outcome: what was asked, what is held, the final weight, its notional, and why."""

    strategy: str
    play: str
    requested: float
    current: float
    weight: float
    notional: float
    reason: str
    reasons: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "play": self.play,
            "requested": self.requested,
            "current": self.current,
            "weight": self.weight,
            "change": _clean(self.weight - self.current),
            "notional": self.notional,
            "reason": self.reason,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Allocation:
    """The final book: one line per play in (strategy, play) order."""

    equity: float
    config: AllocationConfig
    lines: tuple[AllocationLine, ...]
    breached: tuple[str, ...]

    @property
    def weights(self) -> dict[Key, float]:
        return {(line.strategy, line.play): line.weight for line in self.lines}

    @property
    def gross(self) -> float:
        return math.fsum(abs(line.weight) for line in self.lines)

    def strategy_gross(self, strategy: str) -> float:
        return math.fsum(abs(line.weight) for line in self.lines if line.strategy == strategy)

    def strategies(self) -> list[str]:
        return sorted({line.strategy for line in self.lines} | set(self.breached))

    def to_json(self) -> dict:
        """The content of `allocations.json`: plain types, keys in a fixed order, lists sorted."""
        return {
            "equity": self.equity,
            "gross": self.gross,
            "config": self.config.to_dict(),
            "strategies": [
                {
                    "strategy": name,
                    "budget": self.config.budget_for(name),
                    "gross": self.strategy_gross(name),
                    "breached": name in self.breached,
                }
                for name in self.strategies()
            ],
            "allocations": [line.to_dict() for line in self.lines],
        }

    def dumps(self) -> str:
        """`to_json()` as text (2-space indent, trailing newline): the same allocation, the same bytes."""
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"


class AllocationEngine:
    """Applies an `AllocationConfig` to requested and current weights (module docstring)."""

    def __init__(self, config: AllocationConfig | None = None):
        self.config = AllocationConfig() if config is None else config

    def allocate(
        self,
        equity: float,
        requested: Mapping[Key, float],
        current: Mapping[Key, float] | None = None,
        *,
        breached: Iterable[str] = (),
        risk: Mapping[str, StrategyRisk] | None = None,
    ) -> Allocation:
        cfg = self.config
        equity = _checks.positive("equity", equity)
        req = _weights("requested", requested)
        cur = _weights("current", current or {})
        out_of_bounds = set()
        for name in sorted(set(breached)):
            if not isinstance(name, str):
                raise ValueError(f"breached {name!r}: must be a strategy name (str)")
            out_of_bounds.add(name)
        for name, state in sorted((risk or {}).items()):
            if not isinstance(state, StrategyRisk):
                raise ValueError(f"risk[{name!r}]={state!r}: must be a StrategyRisk")
            if state.breached:
                out_of_bounds.add(name)

        keys = sorted(set(req) | set(cur))
        n = len(keys)
        cap = cfg.per_play_cap
        reasons: list[list[str]] = [[] for _ in range(n)]
        fixed = [k[0] in out_of_bounds for k in keys]
        c = [cur.get(k, 0.0) for k in keys]

        def note(i: int, old: float, new: float, why: str) -> None:
            if new != old:
                reasons[i].append(why)

        # 1-2. Targets: breached -> 0; per-play clip; strategy budgets; gross cap.
        t = [0.0 if fixed[i] else req.get(keys[i], 0.0) for i in range(n)]
        for i in range(n):
            if fixed[i]:
                if req.get(keys[i], 0.0) != 0.0 or c[i] != 0.0:
                    reasons[i].append("strategy_breached_risk_cap")
                continue
            clipped = min(max(t[i], -cap), cap)
            note(i, t[i], clipped, "per_play_cap")
            t[i] = clipped
        groups = _strategy_groups(keys)
        for name, idx in groups:
            budget = cfg.budget_for(name)
            if budget is not None:
                _apply(t, idx, _scale_into([t[i] for i in idx], budget), note, "strategy_budget")
        _apply(t, range(n), _scale_into(t, cfg.gross_cap), note, "gross_cap")

        # 3. Max change, inside the per-play cap (caps win when both cannot hold).
        p = list(t)
        z = [0.0] * n  # the reachable weight nearest 0
        for i in range(n):
            if fixed[i]:
                continue
            lo, hi = _reachable(c[i], cfg.max_change, cap)
            p[i] = min(max(t[i], lo), hi)
            z[i] = min(max(0.0, lo), hi)
            note(i, t[i], p[i], "max_change")

        # 4. Pull groups that max change left over their cap back toward their reachable minimum.
        w = list(p)
        for name, idx in groups:
            budget = cfg.budget_for(name)
            if budget is not None:
                _apply(
                    w,
                    idx,
                    _pull_back([w[i] for i in idx], [z[i] for i in idx], budget),
                    note,
                    "strategy_budget",
                )
        floor = [wi if abs(wi) < abs(zi) else zi for wi, zi in zip(w, z, strict=True)]
        _apply(w, range(n), _pull_back(w, floor, cfg.gross_cap), note, "gross_cap")

        lines = []
        for i, (strategy, play) in enumerate(keys):
            weight = _clean(w[i])
            why = tuple(reasons[i])
            lines.append(
                AllocationLine(
                    strategy=strategy,
                    play=play,
                    requested=_clean(req.get(keys[i], 0.0)),
                    current=_clean(c[i]),
                    weight=weight,
                    notional=_clean(weight * equity),
                    reason=why[-1] if why else "requested",
                    reasons=why,
                )
            )
        return Allocation(
            equity=equity, config=cfg, lines=tuple(lines), breached=tuple(sorted(out_of_bounds))
        )


def _clean(x: float) -> float:
    """-0.0 -> 0.0, so equal books serialise to equal bytes."""
    return x + 0.0


def _weights(name: str, weights: Mapping[Key, float]) -> dict[Key, float]:
    if not isinstance(weights, Mapping):
        raise ValueError(f"{name}={weights!r}: must be a mapping of (strategy, play) -> weight")
    out = {}
    for key, value in weights.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(part, str) for part in key)):
            raise ValueError(f"{name} key {key!r}: must be a (strategy, play) tuple of two str")
        out[key] = _checks.number(f"{name}[{key!r}]", value)
    return out


def _strategy_groups(keys: list[Key]) -> list[tuple[str, list[int]]]:
    groups: dict[str, list[int]] = {}
    for i, (strategy, _) in enumerate(keys):  # keys are sorted, so groups come out sorted
        groups.setdefault(strategy, []).append(i)
    return list(groups.items())


def _apply(values: list[float], idx: Iterable[int], new: list[float], note, why: str) -> None:
    for j, i in enumerate(idx):
        note(i, values[i], new[j], why)
        values[i] = new[j]


def _reachable(current: float, max_change: float | None, cap: float) -> tuple[float, float]:
    """The interval of weights one play may hold after this rebalance: within max_change of current
    (bounds trimmed so that |bound − current| <= max_change holds in floating point) and within
    ±cap; when the two do not meet, the cap boundary nearest the current weight (caps win)."""
    if max_change is None:
        return -cap, cap
    lo, hi = current - max_change, current + max_change
    while current - lo > max_change:
        lo = math.nextafter(lo, math.inf)
    while hi - current > max_change:
        hi = math.nextafter(hi, -math.inf)
    lo, hi = max(lo, -cap), min(hi, cap)
    if lo > hi:  # the box lies wholly outside [-cap, cap]
        edge = cap if current > 0 else -cap
        return edge, edge
    return lo, hi


def _sum_abs(xs: Iterable[float]) -> float:
    return math.fsum(abs(x) for x in xs)


def _scale_into(xs: list[float], cap: float) -> list[float]:
    """xs scaled by one factor so that Σ|x| <= cap exactly (unchanged when it already fits)."""
    total = _sum_abs(xs)
    if total <= cap:
        return list(xs)
    s = cap / total
    for _ in range(64):
        out = [x * s for x in xs]
        if _sum_abs(out) <= cap:
            return out
        s = math.nextafter(s, 0.0) * (1.0 - 2.0**-50)
    return [0.0] * len(xs)


def _pull_back(p: list[float], z: list[float], cap: float) -> list[float]:
    """Move every p_i toward z_i (|z_i| <= |p_i|, same side of 0) by one fraction λ of the way, the
    smallest λ with Σ|w| <= cap. Σ|w| is linear in λ, so λ = (Σ|p| − cap) / (Σ|p| − Σ|z|). When Σ|z|
    > cap no λ in [0, 1] fits: scale z down proportionally instead (caps win over max change)."""
    total = _sum_abs(p)
    if total <= cap:
        return list(p)
    least = _sum_abs(z)
    if least > cap:
        return _scale_into(z, cap)
    span = total - least
    lam = (total - cap) / span
    for _ in range(64):
        if lam >= 1.0:
            break
        out = [min(max(pi + lam * (zi - pi), min(pi, zi)), max(pi, zi)) for pi, zi in zip(p, z, strict=True)]
        excess = _sum_abs(out) - cap
        if excess <= 0.0:
            return out
        lam = min(1.0, math.nextafter(lam, 2.0) + excess / span)
    return list(z)
