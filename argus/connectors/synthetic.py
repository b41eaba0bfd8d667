"""A seeded synthetic US equity market written into the event log (`argusctl ingest synthetic`).

Same seed and configuration on a fresh log give byte-identical chunks (the same chain head).

Model, per symbol and trading day (XNYS sessions from exchange_calendars, New York local times via
zoneinfo, so DST and early closes are honoured):

- Sessions: pre-market 04:00 to the open, regular open to close (09:30-16:00, or the early close),
  post-market from the close for four hours but not past 20:00 (13:00-17:00 on an early-close day).
- Mid price: a two-factor Heston ("double Heston") variance process drives the log mid: each factor
  is a CIR process with mean reversion kappa to its long-run level theta and vol-of-vol xi, and its
  shocks are correlated with the price's (leverage, rho < 0); full-truncation Euler on a one-second
  grid. A slow factor sets the level from day to day and the IV term structure; a fast one (half-life
  about 45 minutes) clusters volatility within the day. Variance accrues in "trading time": a U-shaped
  intraday profile in regular hours, much less in the extended sessions, none while closed, and an
  overnight share applied as one step at 04:00 (larger over weekends and holidays), so each day opens
  away from the previous close.
- Event arrivals: Poisson counts per second with a U-shaped intensity (denser at the open and the
  close), scaled by the current volatility, far sparser outside regular hours.
- Quotes: bid/ask on the 0.01 tick around the mid, a spread of one tick plus extra ticks that grow with
  volatility and outside regular hours, sizes in round lots.
- Trades: at the prevailing ask (buyer aggressor) or bid (seller aggressor), the side leaning with the
  next second's move, heavy-tailed sizes (odd lots and Pareto round lots), trade ids increasing
  (YYYYMMDD * 10^7 + n).
- ts_recv = ts_event + a seeded feed latency, kept non-decreasing per symbol; the day's events of every
  symbol are merged by (ts_recv, group, ts_event, kind), where group orders instrument definitions,
  then Clock events, then symbols in their given order.
- Clock events at every clock boundary from 04:00 to 20:00 New York.
- With options: an OptionChainSnapshot per underlying every 30 minutes from the open to the close, for
  the next weekly Friday expiries and the next monthly (third-Friday) expiries, a holiday Friday moving
  to the previous session; IV from the same variance process (expected average variance to expiry,
  plus a premium) with a put-side skew and a small smile in standardised moneyness; Black-Scholes mid,
  greeks and a bid/ask that widens far from the money and near expiry.

Randomness comes only from numpy Generator(Philox) streams keyed by SeedSequence([seed, symbol key,
day index, purpose]), where the symbol key is a stable hash (blake2b) of the symbol's name: each day
and each purpose draws from its own stream, so a symbol's path does not change when another symbol is
added, and the mid path does not depend on the event volume. The state carried from one day to the
next is only the mid and the two factor variances.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from argus.analytics.black_scholes import greeks as bs_greeks
from argus.events import codec, layout
from argus.events.durations import parse_duration
from argus.events.layout import NO_INSTRUMENT, OPTION_ROW_DTYPE
from argus.events.types import AggressorSide, EventType, InstrumentKind, OptionRight, OptionSource
from argus.log.store import EventLog, instrument_event

NEW_YORK = ZoneInfo("America/New_York")
CALENDAR = "XNYS"
NS = 1_000_000_000
MINUTE_NS = 60 * NS
#: One calendar year in ns: option time to expiry is (expiry_ns - ts) / YEAR_NS; theta is per this year.
YEAR_NS = 365 * 86_400 * NS
TRADING_DAYS_PER_YEAR = 252
DAY_SECONDS = 16 * 3600  # 04:00 to 20:00 New York
TICK = 0.01
_TICKS_PER_UNIT = 100  # prices are ticks / 100 (the double nearest the decimal price)

#: Default expected quotes + trades per symbol per trading day (at the long-run volatility).
DEFAULT_EVENTS_PER_DAY = 80_000
MAX_EVENTS_PER_DAY = 2_000_000
DEFAULT_RATE = 0.05
OPTION_SNAPSHOT_NS = 30 * MINUTE_NS
QUOTE_SHARE = 0.78  # of events; the rest are trades

# Share of a day's variance (one trading day = 1/252 of a year) in each part of the day.
_RTH_SHARE, _PRE_SHARE, _POST_SHARE, _GAP_SHARE = 0.80, 0.04, 0.03, 0.13
_GAP_EXTRA_DAY = 0.10  # added overnight share per extra calendar day (weekends, holidays)
# Arrival intensity outside regular hours, relative to the mean regular-hours intensity.
_PRE_ACTIVITY, _POST_ACTIVITY = 0.03, 0.04
_OFF_HOURS_SPREAD = (5.0, 1.5)  # outside regular hours: extra-tick multiplier, and extra ticks added
_LATENCY_MIN_NS, _LATENCY_MEAN_NS = 20_000, 120_000

# The two variance factors (double Heston): a slow one that sets the level from day to day and the term
# structure of IV, and a fast one (half-life about 45 minutes of regular hours) that clusters volatility
# within the day. Mean reversion per year (of trading time), the slow factor's share of the long-run
# variance, and each factor's stationary coefficient of variation.
_KAPPAS = (3.0, 1500.0)
_SLOW_SHARE = 0.3
_CVS = (0.5, 0.95)

# Stream purposes (the last word of each SeedSequence key).
_P_OVERNIGHT, _P_PATH, _P_ARRIVALS, _P_QUOTES, _P_TRADES, _P_LATENCY, _P_OPTIONS = range(7)

_RECORD_BYTES = layout.RECORD_DTYPES[EventType.QUOTE].itemsize
assert layout.RECORD_DTYPES[EventType.TRADE].itemsize == _RECORD_BYTES  # quotes and trades share one row width

# kinds within a symbol's group, in sort order at equal (ts_recv, group, ts_event)
_K_CHAIN, _K_QUOTE, _K_TRADE = 0, 1, 2
_G_INSTRUMENT, _G_CLOCK = -2, -1


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate: `days` XNYS trading days from the first session on or after `start`."""

    seed: int
    symbols: tuple[str, ...]
    start: dt.date
    days: int
    options: bool = False
    clock_ns: int = MINUTE_NS
    events_per_day: int = DEFAULT_EVENTS_PER_DAY
    rate: float = DEFAULT_RATE

    def __post_init__(self) -> None:
        if isinstance(self.symbols, str):
            object.__setattr__(self, "symbols", tuple(s for s in self.symbols.split(",")))
        object.__setattr__(self, "symbols", tuple(self.symbols))
        if isinstance(self.start, dt.datetime):
            object.__setattr__(self, "start", self.start.date())
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed = {self.seed!r} must be an integer >= 0")
        if not self.symbols:
            raise ValueError("symbols = () must name at least one symbol")
        for sym in self.symbols:
            if not sym or sym != sym.strip() or "," in sym:
                raise ValueError(f"symbol = {sym!r} must be non-empty with no spaces or commas")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"symbols = {','.join(self.symbols)!r} must not repeat a symbol")
        if not isinstance(self.days, int) or self.days < 1:
            raise ValueError(f"days = {self.days!r} must be an integer >= 1")
        if not (NS <= self.clock_ns <= DAY_SECONDS * NS):
            raise ValueError(f"clock_ns = {self.clock_ns!r} must be between 1s and 16h")
        if not (1_000 <= self.events_per_day <= MAX_EVENTS_PER_DAY):
            raise ValueError(f"events_per_day = {self.events_per_day!r} must be between 1000 and {MAX_EVENTS_PER_DAY}")
        if not (math.isfinite(self.rate) and -0.05 <= self.rate <= 0.5):
            raise ValueError(f"rate = {self.rate!r} must be finite and between -0.05 and 0.5")




def parse_interval(text: str) -> int:
    """ns of an interval written like '1m', '30s', '5min', '1h'."""
    return parse_duration(text, "interval")


# -- symbols -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolProfile:
    """The per-symbol parameters of the synthetic market."""

    symbol: str
    price: float  # starting mid
    vol: float  # long-run annualised volatility (sqrt of the long-run total variance)
    rho: float  # correlation of price and variance shocks (leverage)
    dividend_yield: float
    spread_ticks: float  # mean extra ticks over one in regular hours at the long-run volatility
    lot_mean: float  # mean displayed size in round lots in regular hours
    skew: float  # IV slope in standardised moneyness (< 0: puts richer)
    smile: float  # IV curvature in standardised moneyness
    venue: str

    @property
    def theta(self) -> float:
        """Long-run total variance (the sum of both factors' long-run levels)."""
        return self.vol * self.vol

    @property
    def thetas(self) -> tuple[float, float]:
        return (_SLOW_SHARE * self.theta, (1.0 - _SLOW_SHARE) * self.theta)

    @property
    def xis(self) -> tuple[float, float]:
        """Vol of variance of each factor, from its stationary coefficient of variation
        (Var v = theta xi^2 / (2 kappa)); both satisfy the Feller condition 2 kappa theta > xi^2."""
        return tuple(cv * math.sqrt(2.0 * k * th) for cv, k, th in zip(_CVS, _KAPPAS, self.thetas, strict=True))

    @property
    def key(self) -> int:
        """A stable 64-bit key of the symbol's name (never Python's salted hash())."""
        return int.from_bytes(hashlib.blake2b(self.symbol.encode(), digest_size=8).digest(), "big")


_KNOWN: dict[str, tuple[float, float, float, float, float, float, float, str]] = {
    # symbol: price, vol, rho, dividend yield, extra spread ticks, lot mean, skew, venue
    "SPY": (500.0, 0.14, -0.75, 0.013, 0.06, 12.0, -0.24, "ARCX"),
    "QQQ": (430.0, 0.19, -0.70, 0.006, 0.12, 8.0, -0.22, "XNAS"),
    "IWM": (205.0, 0.21, -0.65, 0.012, 0.15, 10.0, -0.20, "ARCX"),
    "IBIT": (40.0, 0.55, -0.20, 0.0, 0.25, 20.0, -0.08, "XNAS"),
}


def symbol_profile(symbol: str) -> SymbolProfile:
    """The profile of a known symbol, or one derived from a stable hash of an unknown symbol's name."""
    if symbol in _KNOWN:
        price, vol, rho, q, spread, lots, skew, venue = _KNOWN[symbol]
    else:
        digest = hashlib.blake2b(symbol.encode(), digest_size=32, person=b"argus-synth").digest()
        u = [int.from_bytes(digest[i:i + 8], "big") / 2.0**64 for i in range(0, 32, 8)]
        price = round(10.0 * 80.0 ** u[0], 2)  # 10 .. 800, log-uniform
        vol = 0.18 + 0.42 * u[1]
        rho = -0.3 - 0.4 * u[2]
        q = round(0.025 * u[3], 4)
        spread, lots, skew, venue = 0.4 + price / 400.0, 4.0, -0.15, "XNYS"
    return SymbolProfile(symbol=symbol, price=price, vol=vol, rho=rho, dividend_yield=q, spread_ticks=spread,
                         lot_mean=lots, skew=skew, smile=0.045, venue=venue)


def _stream(seed: int, profile: SymbolProfile, day_index: int, purpose: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, profile.key, day_index, purpose])))


# -- calendar ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """One trading day's boundaries in ns UTC."""

    date: dt.date
    start_ns: int  # 04:00 New York, pre-market opens
    open_ns: int
    close_ns: int
    post_end_ns: int  # post-market ends: close + 4h, at most 20:00
    end_ns: int  # 20:00 New York

    @property
    def early_close(self) -> bool:
        return self.close_ns - self.open_ns < int(6.5 * 3600) * NS


def ny_ns(day: dt.date, hour: int, minute: int = 0) -> int:
    """ns UTC of a New York local wall time (DST-correct)."""
    return int(dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK).timestamp()) * NS


def _calendar(start: dt.date, days: int):
    import exchange_calendars as xcals

    end = start + dt.timedelta(days=2 * days + 160)  # room for the sessions and the option expiries
    with warnings.catch_warnings():  # pandas deprecation notices raised inside exchange_calendars
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return xcals.get_calendar(CALENDAR, start=(start - dt.timedelta(days=10)).isoformat(), end=end.isoformat())


def trading_sessions(start: dt.date, days: int, calendar=None) -> list[Session]:
    """The first `days` XNYS sessions on or after `start`."""
    cal = calendar if calendar is not None else _calendar(start, days)
    first = cal.date_to_session(start.isoformat(), direction="next")
    out = []
    for ts in cal.sessions_window(first, days):
        day = ts.date()
        open_ns = int(cal.session_open(ts).value)
        close_ns = int(cal.session_close(ts).value)
        end_ns = ny_ns(day, 20)
        out.append(Session(day, ny_ns(day, 4), open_ns, close_ns, min(close_ns + 4 * 3600 * NS, end_ns), end_ns))
    return out


def _third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def option_expiries(day: dt.date, calendar, weeklies: int = 3, monthlies: int = 2) -> list[dt.date]:
    """Expiry dates listed on `day`: the next weekly Fridays and monthly third Fridays after it, each
    moved to the previous session when the Friday is a holiday; sorted, strictly after `day`."""

    def settle(friday: dt.date) -> dt.date:
        return calendar.date_to_session(friday.isoformat(), direction="previous").date()

    out: set[dt.date] = set()
    friday = day + dt.timedelta(days=(4 - day.weekday()) % 7)
    while len([d for d in out if d > day]) < weeklies:
        e = settle(friday)
        if e > day:
            out.add(e)
        friday += dt.timedelta(days=7)
    year, month, found = day.year, day.month, 0
    while found < monthlies:
        friday = _third_friday(year, month)
        if friday > day and (e := settle(friday)) > day:
            out.add(e)
            found += 1
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(out)


# -- the price and variance path -----------------------------------------------------------------


def _u_shape(since_open_min: np.ndarray, to_close_min: np.ndarray, a: float, b: float) -> np.ndarray:
    return 1.0 + a * np.exp(-since_open_min / 20.0) + b * np.exp(-to_close_min / 25.0)


def _std_u_mean(a: float, b: float) -> float:
    t = np.arange(23_400) + 0.5
    return float(_u_shape(t / 60.0, (23_400 - t) / 60.0, a, b).mean())


_ARRIVAL_U = (2.5, 2.0)
_VARIANCE_U = (7.0, 2.5)
_ARRIVAL_U_MEAN = _std_u_mean(*_ARRIVAL_U)
_VARIANCE_U_MEAN = _std_u_mean(*_VARIANCE_U)
#: The sum of the arrival profile over a standard day (6.5h regular hours and full extended hours).
_STD_ACTIVITY = 23_400 + 19_800 * _PRE_ACTIVITY + 14_400 * _POST_ACTIVITY


@dataclass
class _DayProfile:
    """Per-second arrays of one session: what part of the day each second is in, its arrival activity
    and the trading time (years) of variance it carries."""

    regular: np.ndarray
    extended: np.ndarray
    activity: np.ndarray
    dt_years: np.ndarray


def _day_profile(sess: Session) -> _DayProfile:
    sec_ns = sess.start_ns + (np.arange(DAY_SECONDS, dtype=np.int64) * NS) + NS // 2
    regular = (sec_ns >= sess.open_ns) & (sec_ns < sess.close_ns)
    pre = sec_ns < sess.open_ns
    post = (sec_ns >= sess.close_ns) & (sec_ns < sess.post_end_ns)
    since_open = (sec_ns - sess.open_ns) / MINUTE_NS
    to_close = (sess.close_ns - sec_ns) / MINUTE_NS
    u_arr = _u_shape(since_open, to_close, *_ARRIVAL_U) / _ARRIVAL_U_MEAN
    u_var = _u_shape(since_open, to_close, *_VARIANCE_U) / _VARIANCE_U_MEAN
    activity = np.where(regular, u_arr, np.where(pre, _PRE_ACTIVITY, np.where(post, _POST_ACTIVITY, 0.0)))
    day = 1.0 / TRADING_DAYS_PER_YEAR
    dt_years = np.where(regular, u_var * _RTH_SHARE * day / 23_400,
                        np.where(pre, _PRE_SHARE * day / 19_800, np.where(post, _POST_SHARE * day / 14_400, 0.0)))
    return _DayProfile(regular, pre | post, activity, dt_years)


@dataclass
class _State:
    log_mid: float
    variances: tuple[float, float]  # slow and fast factor


def _initial_state(profile: SymbolProfile, rng: np.random.Generator) -> _State:
    z = rng.standard_normal(3)
    v = tuple(th * math.exp(0.3 * float(zi) - 0.045) for th, zi in zip(profile.thetas, z[1:], strict=True))
    return _State(math.log(profile.price) + 0.01 * float(z[0]), v)


def _overnight(profile: SymbolProfile, state: _State, gap_days: int, rng: np.random.Generator) -> _State:
    """One step over the night (and any weekend or holiday) before the session's 04:00."""
    tau = (_GAP_SHARE + _GAP_EXTRA_DAY * max(gap_days - 1, 0)) / TRADING_DAYS_PER_YEAR
    z = rng.standard_normal(5)
    jump = float(z[4]) * 0.01 if rng.random() < 0.08 else 0.0
    rho, rho_c = profile.rho, math.sqrt(1.0 - profile.rho**2)
    log_mid = state.log_mid + jump
    out = []
    for i, (kappa, theta, xi) in enumerate(zip(_KAPPAS, profile.thetas, profile.xis, strict=True)):
        v = max(state.variances[i], 0.0)
        zv, zp = float(z[2 * i]), float(z[2 * i + 1])
        log_mid += -0.5 * v * tau + math.sqrt(v * tau) * (rho * zv + rho_c * zp)
        # Exact mean and variance of the CIR step (kappa * tau is not small for the fast factor).
        decay = math.exp(-kappa * tau)
        sd = xi * math.sqrt(v * (1.0 - decay * decay) / (2.0 * kappa))
        v_next = theta + (v - theta) * decay + sd * zv
        out.append(max(v_next, _FLOOR * theta))
    return _State(log_mid, (out[0], out[1]))


_FLOOR = 0.02  # of a factor's long-run level


def _cir(v0: float, kappa: float, theta: float, xi: float, dt_years: list[float], z: list[float]) -> np.ndarray:
    """A CIR variance path (full-truncation Euler), len(dt_years) + 1 values, floored."""
    v = v0
    out = [v]
    append = out.append
    sqrt = math.sqrt
    for dt_i, zi in zip(dt_years, z, strict=True):
        if dt_i > 0.0:
            vp = v if v > 0.0 else 0.0
            v = v + kappa * (theta - vp) * dt_i + xi * sqrt(vp * dt_i) * zi
        append(v)
    return np.maximum(np.asarray(out), _FLOOR * theta)


def _path(profile: SymbolProfile, state: _State, prof: _DayProfile, rng: np.random.Generator):
    """(log mid, (slow, fast) variance, end state): log mid and each factor's variance at every second
    boundary of the day (DAY_SECONDS + 1 values each)."""
    n = DAY_SECONDS
    dt_years = prof.dt_years
    dt_list = dt_years.tolist()
    rho, rho_c = profile.rho, math.sqrt(1.0 - profile.rho**2)
    steps = np.zeros(n)
    factors = []
    for i, (kappa, theta, xi) in enumerate(zip(_KAPPAS, profile.thetas, profile.xis, strict=True)):
        z_v = rng.standard_normal(n)
        z_p = rng.standard_normal(n)
        var = _cir(state.variances[i], kappa, theta, xi, dt_list, z_v.tolist())
        v_used = var[:-1]
        steps += -0.5 * v_used * dt_years + np.sqrt(v_used * dt_years) * (rho * z_v + rho_c * z_p)
        factors.append(var)
    log_mid = np.empty(n + 1)
    log_mid[0] = 0.0
    np.cumsum(steps, out=log_mid[1:])
    log_mid += state.log_mid
    return log_mid, (factors[0], factors[1]), _State(float(log_mid[-1]), (float(factors[0][-1]), float(factors[1][-1])))


# -- quotes and trades ---------------------------------------------------------------------------


def _arrivals(rate: np.ndarray, sess: Session, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson arrivals with a per-second rate: (ts_event, second index, fraction of the second), sorted."""
    counts = rng.poisson(rate)
    sec = np.repeat(np.arange(DAY_SECONDS, dtype=np.int64), counts)
    off = rng.integers(0, NS, size=len(sec), dtype=np.int64)
    ts = sess.start_ns + sec * NS + off
    order = np.argsort(ts, kind="stable")
    ts, sec, off = ts[order], sec[order], off[order]
    return ts, sec, off / NS


@dataclass
class _SymbolDay:
    """One symbol's records of one day: 64-byte quote and trade rows with their sort keys, and its
    option chain snapshots."""

    rows: np.ndarray  # (n, 64) uint8
    ts_recv: np.ndarray
    ts_event: np.ndarray
    kind: np.ndarray
    quotes: int
    trades: int
    chains: list[tuple[int, int, bytes]] = field(default_factory=list)  # (ts_event, ts_recv, record)
    option_rows: int = 0
    state: _State | None = None


def _simulate_symbol_day(cfg: SyntheticConfig, profile: SymbolProfile, iid: int, day_index: int, sess: Session,
                         prof: _DayProfile, state: _State, expiries: list[dt.date]) -> _SymbolDay:
    seed = cfg.seed
    log_mid, factors, end_state = _path(profile, state, prof, _stream(seed, profile, day_index, _P_PATH))
    variance = factors[0] + factors[1]
    vol_ratio = np.sqrt(variance[:-1] / profile.theta)
    intensity = prof.activity * np.clip(np.sqrt(vol_ratio), 0.5, 2.0) * (cfg.events_per_day / _STD_ACTIVITY)

    rng = _stream(seed, profile, day_index, _P_ARRIVALS)
    q_ts, q_sec, q_frac = _arrivals(intensity * QUOTE_SHARE, sess, rng)
    t_ts, t_sec, t_frac = _arrivals(intensity * (1.0 - QUOTE_SHARE), sess, rng)

    # Quotes: a tick-rounded spread around the mid.
    rng = _stream(seed, profile, day_index, _P_QUOTES)
    mid = np.exp(log_mid[q_sec] + q_frac * (log_mid[q_sec + 1] - log_mid[q_sec]))
    off_hours = ~prof.regular[q_sec]
    extra = (profile.spread_ticks * vol_ratio[q_sec] * np.where(off_hours, _OFF_HOURS_SPREAD[0], 1.0)
             + np.where(off_hours, _OFF_HOURS_SPREAD[1], 0.0))
    spread = 1 + rng.poisson(extra)
    bid_t = np.maximum(np.floor(mid * _TICKS_PER_UNIT - spread / 2.0 + 0.5).astype(np.int64), 1)
    ask_t = bid_t + spread
    lot_mean = np.where(off_hours, max(1.0, profile.lot_mean / 6.0), profile.lot_mean)
    bid_size = 100.0 * rng.geometric(1.0 / lot_mean)
    ask_size = 100.0 * rng.geometric(1.0 / lot_mean)

    # Trades: at the prevailing quote, the aggressor leaning with the next second's move.
    rng = _stream(seed, profile, day_index, _P_TRADES)
    j = np.searchsorted(q_ts, t_ts, side="right") - 1
    keep = j >= 0
    t_ts, t_sec, t_frac, j = t_ts[keep], t_sec[keep], t_frac[keep], j[keep]
    move = log_mid[t_sec + 1] - log_mid[t_sec]
    scale = np.sqrt(variance[t_sec] * np.maximum(prof.dt_years[t_sec], 1e-15))
    p_buy = 0.5 + 0.25 * np.tanh(move / scale)
    buyer = rng.random(len(t_ts)) < p_buy
    price_t = np.where(buyer, ask_t[j], bid_t[j])
    odd = rng.random(len(t_ts)) < 0.35
    lots = np.floor(rng.pareto(1.4, len(t_ts)) + 1.0)
    lots = np.minimum(lots, np.where(prof.regular[t_sec], 500.0, 20.0))
    size = np.where(odd, rng.integers(1, 100, len(t_ts)).astype(np.float64), 100.0 * lots)
    base_id = (sess.date.year * 10_000 + sess.date.month * 100 + sess.date.day) * 10_000_000
    trade_id = base_id + np.arange(1, len(t_ts) + 1, dtype=np.uint64)

    # Feed latency, kept non-decreasing per symbol in ts_event order (a quote before a trade at a tie).
    rng = _stream(seed, profile, day_index, _P_LATENCY)
    ts_event = np.concatenate([q_ts, t_ts])
    kind = np.concatenate([np.full(len(q_ts), _K_QUOTE, np.int8), np.full(len(t_ts), _K_TRADE, np.int8)])
    order = np.lexsort((kind, ts_event))
    latency = _LATENCY_MIN_NS + rng.exponential(_LATENCY_MEAN_NS, len(ts_event)).astype(np.int64)
    recv_sorted = np.maximum.accumulate(ts_event[order] + latency)
    ts_recv = np.empty_like(ts_event)
    ts_recv[order] = recv_sorted
    nq = len(q_ts)

    quotes = codec.encode_columns(EventType.QUOTE, iid, q_ts, ts_recv[:nq], bid=bid_t / _TICKS_PER_UNIT,
                                  ask=ask_t / _TICKS_PER_UNIT, bid_size=bid_size, ask_size=ask_size)
    trades = codec.encode_columns(EventType.TRADE, iid, t_ts, ts_recv[nq:], price=price_t / _TICKS_PER_UNIT,
                                  size=size, trade_id=trade_id,
                                  aggressor=np.where(buyer, int(AggressorSide.BUYER), int(AggressorSide.SELLER)))
    rows = np.concatenate([quotes.view(np.uint8).reshape(nq, _RECORD_BYTES),
                           trades.view(np.uint8).reshape(len(t_ts), _RECORD_BYTES)])
    out = _SymbolDay(rows, ts_recv, ts_event, kind, nq, len(t_ts))
    if cfg.options:
        _option_chains(cfg, profile, iid, day_index, sess, log_mid, factors, expiries, out)
    out.state = end_state
    return out


# -- option chains -------------------------------------------------------------------------------


_STRIKE_STEPS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0)
_MAX_STRIKES_PER_SIDE = 30


def _strike_grid(spot: float, vol: float, t_years: float) -> np.ndarray:
    """Listed strikes for one expiry: a listed-style increment (0.5, 1, 2.5, 5, 10, ...), about +-3.5
    standard deviations (at least +-4%) around spot, at most 2 * 30 + 1 strikes."""
    half_width = spot * max(0.04, 3.5 * vol * math.sqrt(t_years))
    need = max(spot * 0.002, half_width / _MAX_STRIKES_PER_SIDE)
    step = next((s for s in _STRIKE_STEPS if s >= need), _STRIKE_STEPS[-1])
    while half_width / step > _MAX_STRIKES_PER_SIDE:
        step *= 2.0
    center = round(spot / step)
    n = int(math.ceil(half_width / step))
    strikes = (np.arange(center - n, center + n + 1) * step).astype(np.float64)
    return strikes[strikes > 0]


def _atm_vol(profile: SymbolProfile, v: tuple[float, float], t: np.ndarray) -> np.ndarray:
    """ATM IV: sqrt of the expected average variance to expiry given each factor's current variance,
    plus a small premium (term structure: short expiries follow the current variance, long ones the
    long-run level)."""
    avg = np.zeros_like(t)
    for kappa, theta, vi in zip(_KAPPAS, profile.thetas, v, strict=True):
        kt = kappa * t
        avg += theta + (vi - theta) * (1.0 - np.exp(-kt)) / kt
    return 1.05 * np.sqrt(avg)


def _option_chains(cfg: SyntheticConfig, profile: SymbolProfile, iid: int, day_index: int, sess: Session,
                   log_mid: np.ndarray, factors: tuple[np.ndarray, np.ndarray], expiries: list[dt.date],
                   out: _SymbolDay) -> None:
    """The day's snapshots, every 30 minutes from the open to the close. Contracts (and their open
    interest) are listed once a day from the 04:00 spot; rows are ordered by expiry, strike, then call
    before put, so rows 2i and 2i+1 are the call and the put of one (expiry, strike)."""
    rng = _stream(cfg.seed, profile, day_index, _P_OPTIONS)
    r, q = cfg.rate, profile.dividend_yield
    spot0 = float(np.exp(log_mid[0]))
    # The day's listed contracts and their open interest (fixed for the day).
    exp_ns, strikes, rights = [], [], []
    for e in expiries:
        e_ns = ny_ns(e, 16)
        ks = _strike_grid(spot0, profile.vol, (e_ns - sess.start_ns) / YEAR_NS)
        for k in ks:
            for right in (OptionRight.CALL, OptionRight.PUT):
                exp_ns.append(e_ns)
                strikes.append(k)
                rights.append(int(right))
    exp_ns_a = np.asarray(exp_ns, dtype=np.int64)
    k_a = np.asarray(strikes)
    right_a = np.asarray(rights, dtype=np.uint16)
    is_call = right_a == int(OptionRight.CALL)
    monthly = np.isin(exp_ns_a, [ny_ns(_third_friday(e.year, e.month), 16) for e in expiries])
    t0 = (exp_ns_a - sess.start_ns) / YEAR_NS
    z0 = np.log(k_a / spot0) / (profile.vol * np.sqrt(t0))
    oi = np.round(4000.0 * np.exp(-0.5 * z0**2 / 2.0) * rng.lognormal(0.0, 0.6, len(k_a))
                  * np.where(monthly, 2.5, 1.0) * np.where(is_call, 1.0, 1.3))

    n_snap = (sess.close_ns - sess.open_ns) // OPTION_SNAPSHOT_NS + 1
    for s in range(n_snap):
        ts = sess.open_ns + s * OPTION_SNAPSHOT_NS
        sec = (ts - sess.start_ns) // NS
        spot = float(np.exp(log_mid[sec]))
        v = (float(factors[0][sec]), float(factors[1][sec]))
        t = (exp_ns_a - ts) / YEAR_NS
        fwd = spot * np.exp((r - q) * t)
        atm = _atm_vol(profile, v, t)
        z = np.log(k_a / fwd) / (atm * np.sqrt(t))
        iv = np.maximum(atm * np.maximum(1.0 + profile.skew * z + profile.smile * z * z, 0.5), 0.03)
        g = bs_greeks(spot, k_a, t, iv, r, q, is_call)
        days_left = np.maximum(t * 365.0, 1.0)
        half = 0.5 * (0.01 + 0.006 * g.price) * (1.0 + 0.25 * np.abs(z)) * (1.0 + 1.0 / days_left)
        bid_t = np.maximum(np.floor((g.price - half) * _TICKS_PER_UNIT + 1e-9), 0.0)
        ask_t = np.maximum(np.ceil((g.price + half) * _TICKS_PER_UNIT - 1e-9), bid_t + 1.0)
        near = np.exp(-0.5 * (z / 1.5) ** 2)
        rows = np.zeros(len(k_a), dtype=OPTION_ROW_DTYPE)
        rows["expiry_ns"] = exp_ns_a
        rows["strike"] = k_a
        rows["bid"] = bid_t / _TICKS_PER_UNIT
        rows["ask"] = ask_t / _TICKS_PER_UNIT
        rows["bid_size"] = np.where(bid_t > 0, rng.integers(1, 50, len(k_a)) + np.round(400 * near), 0.0)
        rows["ask_size"] = rng.integers(1, 50, len(k_a)) + np.round(400 * near)
        rows["open_interest"] = oi
        rows["iv"] = iv
        rows["delta"] = g.delta
        rows["gamma"] = g.gamma
        rows["vega"] = g.vega
        rows["theta"] = g.theta
        rows["right"] = right_a
        rows["source"] = int(OptionSource.SYNTHETIC)
        rows["contract_id"] = NO_INSTRUMENT
        recv = ts + int(rng.integers(200_000, 2_000_000))
        record = codec.encode_option_chain(iid, ts, recv, spot, int(OptionSource.SYNTHETIC), rows)
        out.chains.append((ts, recv, record))
        out.option_rows += len(rows)


# -- writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSummary:
    events: int
    days: int
    first_day: str
    last_day: str
    quotes: int
    trades: int
    clocks: int
    option_snapshots: int
    option_rows: int
    instruments_defined: int
    instruments: int  # defined in the log after the run
    symbols: dict[str, int]  # symbol -> instrument id
    first_offset: int
    last_offset: int
    chain_head: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _clock_times(sess: Session, clock_ns: int) -> np.ndarray:
    return np.arange(sess.start_ns, sess.end_ns + 1, clock_ns, dtype=np.int64)


def _assemble(days: Sequence[_SymbolDay], specials: list[tuple[int, int, int, int, bytes]]) -> bytes:
    """One body: the symbols' 64-byte rows and the variable records (ts_recv, group, ts_event, kind,
    bytes) merged by (ts_recv, group, ts_event, kind), stably."""
    rows = np.concatenate([d.rows for d in days]) if days else np.zeros((0, _RECORD_BYTES), np.uint8)
    n = len(rows)
    recv = np.concatenate([*(d.ts_recv for d in days), np.asarray([s[0] for s in specials], np.int64)])
    group = np.concatenate([*(np.full(len(d.rows), g, np.int32) for g, d in enumerate(days)),
                            np.asarray([s[1] for s in specials], np.int32)])
    event = np.concatenate([*(d.ts_event for d in days), np.asarray([s[2] for s in specials], np.int64)])
    kind = np.concatenate([*(d.kind for d in days), np.asarray([s[3] for s in specials], np.int8)])
    order = np.lexsort((kind, event, group, recv))
    special_at = order >= n
    fixed = rows[order[~special_at]]
    pieces: list = []
    done = 0
    for k, (pos, sid) in enumerate(zip(np.flatnonzero(special_at).tolist(), (order[special_at] - n).tolist(),
                                       strict=True)):
        upto = pos - k
        if upto > done:
            pieces.append(fixed[done:upto])
            done = upto
        pieces.append(specials[sid][4])
    if done < len(fixed):
        pieces.append(fixed[done:])
    return b"".join(memoryview(p).cast("B") if isinstance(p, np.ndarray) else p for p in pieces)


def write_synthetic_market(log: EventLog, config: SyntheticConfig, *, progress: bool = False) -> SyntheticSummary:
    """Append `config.days` trading days of synthetic market data to `log`, one atomic append per day.

    Symbols not yet in the log are defined (EQUITY, tick 0.01, USD) with the next dense ids at the
    start of the first day's batch; symbols already there keep their ids."""
    from tqdm import tqdm

    cal = _calendar(config.start, config.days)
    sessions = trading_sessions(config.start, config.days, cal)
    profiles = [symbol_profile(s) for s in config.symbols]
    ids: dict[str, int] = {}
    definitions: list[bytes] = []
    next_id = log.info().instruments
    for p in profiles:
        existing = log.instrument_id(p.symbol)
        if existing is None:
            ids[p.symbol] = next_id
            definitions.append(codec.encode(instrument_event(
                next_id, p.symbol, kind=InstrumentKind.EQUITY, ts=sessions[0].start_ns, multiplier=1.0,
                venue=p.venue, currency="USD", tick_size=TICK)))
            next_id += 1
        else:
            ids[p.symbol] = existing

    states: list[_State] = []
    totals = dict(events=0, quotes=0, trades=0, clocks=0, option_snapshots=0, option_rows=0)
    first_offset = last_offset = -1
    bar = tqdm(total=len(sessions), desc="synthetic", unit="day", file=sys.stderr, disable=not progress)
    try:
        for d, sess in enumerate(sessions):
            prof = _day_profile(sess)
            expiries = option_expiries(sess.date, cal) if config.options else []
            specials: list[tuple[int, int, int, int, bytes]] = []
            if d == 0:
                specials += [(sess.start_ns, _G_INSTRUMENT, sess.start_ns, 0, rec) for rec in definitions]
            clocks = _clock_times(sess, config.clock_ns)
            clock_recs = codec.encode_columns(EventType.CLOCK, NO_INSTRUMENT, clocks, clocks)
            clock_bytes = clock_recs.view(np.uint8).reshape(len(clocks), clock_recs.dtype.itemsize)
            specials += [(int(t), _G_CLOCK, int(t), 0, clock_bytes[i].tobytes()) for i, t in enumerate(clocks.tolist())]
            days: list[_SymbolDay] = []
            for k, p in enumerate(profiles):
                if d == 0:
                    state = _initial_state(p, _stream(config.seed, p, 0, _P_OVERNIGHT))
                    states.append(state)
                else:
                    gap = (sess.date - sessions[d - 1].date).days
                    state = _overnight(p, states[k], gap, _stream(config.seed, p, d, _P_OVERNIGHT))
                sd = _simulate_symbol_day(config, p, ids[p.symbol], d, sess, prof, state, expiries)
                states[k] = sd.state
                specials += [(recv, k, ts, _K_CHAIN, rec) for ts, recv, rec in sd.chains]
                days.append(sd)
                totals["quotes"] += sd.quotes
                totals["trades"] += sd.trades
                totals["option_snapshots"] += len(sd.chains)
                totals["option_rows"] += sd.option_rows
            totals["clocks"] += len(clocks)
            body = _assemble(days, specials)
            result = log.append(body)
            if first_offset < 0:
                first_offset = result.first_offset
            last_offset = result.first_offset + result.count - 1
            totals["events"] += result.count
            bar.update(1)
    finally:
        bar.close()
    return SyntheticSummary(
        days=len(sessions), first_day=sessions[0].date.isoformat(), last_day=sessions[-1].date.isoformat(),
        instruments_defined=len(definitions), instruments=log.info().instruments, symbols=ids,
        first_offset=first_offset, last_offset=last_offset, chain_head=log.chain_head().hex(), **totals)
