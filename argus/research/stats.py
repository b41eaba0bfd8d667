"""Deploy-gate statistics: PSR, DSR, MinTRL, effective trials, PBO, Reality Check / SPA, and gates.

Pure functions on numpy and scipy (the bootstrap tests call ``arch``); nothing here touches the log, a
strategy or the disk, and every random draw comes from a seeded generator, so the same inputs give the
same numbers.

Conventions (they matter: mixing them silently moves every gate):

* Sharpe ratios are **per period** (per bar, per day, ...) and **not annualised**: SR = mean / std of
  the per-period excess returns, std with ``ddof=1``. To use an annualised figure with ``q`` periods a
  year, divide the Sharpe ratio by ``sqrt(q)`` and a *variance* of Sharpe ratios by ``q``.
* ``kurtosis`` is the plain fourth standardised moment (3 for a normal distribution), **not** the excess
  kurtosis that ``scipy.stats.kurtosis`` and pandas return by default (add 3 to those).
* ``n_obs`` is the number of returns the Sharpe ratio was estimated on.

Worked conversion, the example of Bailey & López de Prado (2014), 250 trading days a year: an annualised
SR of 2.5 is 2.5 / sqrt(250) = 0.158114 per day; the variance 1/2 of the annualised trial Sharpe ratios
is 0.5 / 250 = 0.002 per day; with N = 100 trials SR0 = 0.113172 per day, and with T = 1250, skew -3,
kurtosis 10, DSR = 0.9004 (N = 46: SR0 = 0.100362, DSR = 0.9505).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

__all__ = [
    "BootstrapTestResult",
    "GateResult",
    "SharpeMoments",
    "apply_gates",
    "deflated_sharpe_ratio",
    "effective_number_of_trials",
    "expected_max_sharpe",
    "min_track_record_length",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "reality_check",
    "sharpe_moments",
    "spa_test",
    "stationary_bootstrap_variance",
]


def _out(x: np.ndarray) -> float | np.ndarray:
    """A 0-d result as a Python float, anything else as an array."""
    return float(x) if np.ndim(x) == 0 else x


def _sr_variance_factor(sr: np.ndarray, skew: np.ndarray, kurtosis: np.ndarray) -> np.ndarray:
    """1 - skew * SR + (kurtosis - 1) / 4 * SR^2: the asymptotic variance of the Sharpe ratio estimator
    times (T - 1) under non-normal iid returns (Mertens 2002; Bailey & López de Prado 2012, eq. 5)."""
    factor = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if np.any(~(factor > 0)):
        raise ValueError(
            "stats: 1 - skew*sr + (kurtosis-1)/4*sr^2 must be > 0; it always is for moments of a real "
            "distribution (kurtosis >= 1 + skew^2), so check that kurtosis is not excess kurtosis"
        )
    return factor


# --------------------------------------------------------------------------------------------------------
# Sharpe-ratio statistics
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharpeMoments:
    """The inputs of PSR/DSR/MinTRL estimated from one return series (per period; kurtosis not excess)."""

    sr: float
    skew: float
    kurtosis: float
    n_obs: int


def sharpe_moments(returns) -> SharpeMoments:
    """Per-period Sharpe ratio (mean / std, ``ddof=1``), skewness and kurtosis (not excess; the biased
    moment estimators, as ``scipy.stats.skew`` / ``kurtosis(fisher=False)``) of a 1-D excess-return series."""
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 1 or x.size < 3 or not np.all(np.isfinite(x)):
        raise ValueError("stats: returns must be a finite 1-D series of at least 3 observations")
    std = float(np.std(x, ddof=1))
    if not std > 0:
        raise ValueError("stats: returns have no dispersion; the Sharpe ratio is undefined")
    return SharpeMoments(
        sr=float(np.mean(x) / std),
        skew=float(sps.skew(x)),
        kurtosis=float(sps.kurtosis(x, fisher=False)),
        n_obs=int(x.size),
    )


def probabilistic_sharpe_ratio(sr, sr_benchmark, n_obs, skew, kurtosis) -> float | np.ndarray:
    r"""Probabilistic Sharpe ratio: the probability that the true Sharpe ratio exceeds ``sr_benchmark``.

    .. math:: PSR(SR^*) = \Phi\left(\frac{(\widehat{SR} - SR^*)\sqrt{T - 1}}
              {\sqrt{1 - \gamma_3 \widehat{SR} + \frac{\gamma_4 - 1}{4}\widehat{SR}^2}}\right)

    Bailey, D. H. and López de Prado, M. (2012), "The Sharpe Ratio Efficient Frontier", *Journal of
    Risk* 15(2), 3-44, eq. (5)-(6). ``sr`` and ``sr_benchmark`` are per-period (not annualised),
    ``kurtosis`` is not excess (3 for normal returns), ``n_obs`` = T. Broadcasts over arrays.

    PSR falls as ``sr_benchmark`` rises and, for SR > SR*, rises with T. It rises with ``sr`` wherever
    1 - γ3 (SR + SR*) / 2 + (γ4 - 1) / 4 * SR * SR* > 0 (the sign of its derivative), which holds for
    per-period Sharpe ratios of realistic size but not for, e.g., SR = 1 per period with skew 3.
    """
    sr, sr_benchmark, n_obs, skew, kurtosis = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (sr, sr_benchmark, n_obs, skew, kurtosis))
    )
    if np.any(~(n_obs > 1)):
        raise ValueError("stats: n_obs must be > 1")
    factor = _sr_variance_factor(sr, skew, kurtosis)
    return _out(sps.norm.cdf((sr - sr_benchmark) * np.sqrt(n_obs - 1.0) / np.sqrt(factor)))


def expected_max_sharpe(sr_variance, n_trials) -> float | np.ndarray:
    r"""SR0: the expected maximum of ``n_trials`` per-period Sharpe ratios whose true value is 0.

    .. math:: SR_0 = \sqrt{V}\left[(1 - \gamma)\,\Phi^{-1}\!\left(1 - \frac{1}{N}\right)
              + \gamma\,\Phi^{-1}\!\left(1 - \frac{1}{N e}\right)\right]

    with V the variance of the trial Sharpe ratios and γ the Euler-Mascheroni constant: Bailey, D. H.
    and López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest
    Overfitting and Non-Normality", *Journal of Portfolio Management* 40(5), 94-107 (the extreme-value
    approximation of its appendix). Same formula as skfolio's ``expected_max_sharpe_ratio`` with mean 0.

    ``n_trials`` may be fractional (an effective number of trials) and must be >= 1. With one trial (or
    V = 0) there is no selection and SR0 = 0. The approximation is asymptotic in N and turns negative
    for N below about 1.3, where the exact expected maximum of >= 1 zero-mean draws is >= 0: the result
    is floored at 0, so the DSR never exceeds the PSR against 0. Broadcasts over arrays.
    """
    v, n = np.broadcast_arrays(np.asarray(sr_variance, dtype=np.float64), np.asarray(n_trials, dtype=np.float64))
    if np.any(~(v >= 0)) or np.any(~np.isfinite(v)):
        raise ValueError("stats: sr_variance must be finite and >= 0")
    if np.any(~(n >= 1)) or np.any(~np.isfinite(n)):
        raise ValueError("stats: n_trials must be finite and >= 1")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (1.0 - np.euler_gamma) * sps.norm.ppf(1.0 - 1.0 / n) + np.euler_gamma * sps.norm.ppf(
            1.0 - 1.0 / (n * np.e)
        )
    sr0 = np.where(n > 1, np.sqrt(v) * np.nan_to_num(z, neginf=0.0), 0.0)
    return _out(np.maximum(sr0, 0.0))


def deflated_sharpe_ratio(sr, sr_variance, n_trials, n_obs, skew, kurtosis) -> float | np.ndarray:
    """Deflated Sharpe ratio: the PSR of the selected trial against SR0, the expected maximum Sharpe ratio
    of ``n_trials`` zero-skill trials, i.e. ``PSR(SR0)`` with SR0 = ``expected_max_sharpe(sr_variance,
    n_trials)``.

    Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for Selection
    Bias, Backtest Overfitting and Non-Normality", *Journal of Portfolio Management* 40(5), 94-107.

    Every Sharpe quantity is per period: ``sr`` the selected trial's Sharpe ratio, ``sr_variance`` the
    variance of *all* trials' Sharpe ratios (annualised inputs: divide ``sr`` by sqrt(q) and
    ``sr_variance`` by q for q periods a year). ``skew``, ``kurtosis`` (not excess) and ``n_obs`` are
    those of the selected trial's returns. ``n_trials`` may be an effective number
    (:func:`effective_number_of_trials`). The paper's example (see the module docstring) gives 0.9004.
    """
    sr0 = expected_max_sharpe(sr_variance, n_trials)
    return probabilistic_sharpe_ratio(sr, sr0, n_obs, skew, kurtosis)


def min_track_record_length(sr, sr_benchmark, skew, kurtosis, alpha=0.05) -> float | np.ndarray:
    r"""Minimum track record length: how many observations are needed for ``PSR(sr_benchmark) >= 1 - alpha``.

    .. math:: MinTRL = 1 + \left[1 - \gamma_3 \widehat{SR} + \frac{\gamma_4 - 1}{4}\widehat{SR}^2\right]
              \left(\frac{z_{1-\alpha}}{\widehat{SR} - SR^*}\right)^2

    Bailey, D. H. and López de Prado, M. (2012), "The Sharpe Ratio Efficient Frontier", *Journal of
    Risk* 15(2), 3-44, eq. (11). Per-period Sharpe ratios, kurtosis not excess; the result is a number
    of observations in the same period (a real number: round it up for a count), and ``inf`` when
    ``sr <= sr_benchmark`` (no track record is long enough). It inverts
    :func:`probabilistic_sharpe_ratio`: PSR at ``n_obs = MinTRL`` is exactly ``1 - alpha``.
    """
    sr, sr_benchmark, skew, kurtosis, alpha = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (sr, sr_benchmark, skew, kurtosis, alpha))
    )
    if np.any(~((alpha > 0) & (alpha < 1))):
        raise ValueError("stats: alpha must be in (0, 1)")
    factor = _sr_variance_factor(sr, skew, kurtosis)
    edge = sr - sr_benchmark
    with np.errstate(divide="ignore"):
        trl = 1.0 + factor * (sps.norm.ppf(1.0 - alpha) / np.where(edge > 0, edge, 1.0)) ** 2
    return _out(np.where(edge > 0, trl, np.inf))


# --------------------------------------------------------------------------------------------------------
# Number of trials
# --------------------------------------------------------------------------------------------------------


def effective_number_of_trials(
    returns_matrix, method: Literal["effective_rank", "li_ji", "average_correlation"] = "effective_rank"
) -> float:
    r"""Effective number of independent trials among the N columns of a T x N matrix of trial returns,
    from the eigenvalues λ_1..λ_N of their N x N correlation matrix (they sum to N).

    ``"effective_rank"`` (default): the exponential of the Shannon entropy of p_i = λ_i / N,

    .. math:: N_{eff} = \exp\left(-\sum_i p_i \log p_i\right),

    Roy, O. and Vetterli, M. (2007), "The Effective Rank: A Measure of Effective Dimensionality",
    *Proc. 15th European Signal Processing Conference (EUSIPCO)*, 606-610. Identical columns give 1,
    uncorrelated columns N (less the sampling spread of the eigenvalues, of order N/T), and k independent
    clusters of identical columns of equal size give k; it is continuous in the correlations.

    ``"li_ji"``: :math:`N_{eff} = \sum_i [\mathbb{1}(λ_i \ge 1) + (λ_i - \lfloor λ_i \rfloor)]`, Li, J.
    and Ji, L. (2005), "Adjusting Multiple Testing in Multilocus Analyses Using the Eigenvalues of a
    Correlation Matrix", *Heredity* 95(3), 221-227 (1 for identical, N for uncorrelated columns; the
    fractional parts make it jump by up to 1 per cluster when an eigenvalue crosses an integer).

    ``"average_correlation"``: :math:`N_{eff} = \bar\rho + (1 - \bar\rho) N` on the mean off-diagonal
    correlation :math:`\bar\rho` (floored at 0), the shortcut often quoted with the DSR; it is not
    derived in Bailey & López de Prado (2014), whose text suggests clustering the trials, and it ignores
    cluster structure (4 clusters of 5 identical columns give about 16, not 4).

    Bailey & López de Prado (2014) leave the estimator open; the result (a float in [1, N]) is meant for
    :func:`expected_max_sharpe` / :func:`deflated_sharpe_ratio`. Columns without dispersion carry no
    information about correlation and are rejected.
    """
    x = np.asarray(returns_matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3 or x.shape[1] < 1 or not np.all(np.isfinite(x)):
        raise ValueError("stats: returns_matrix must be a finite T x N matrix with T >= 3 and N >= 1")
    n = x.shape[1]
    if n == 1:
        return 1.0
    if np.any(~(np.std(x, axis=0) > 0)):
        raise ValueError("stats: every trial (column) must have dispersion to estimate correlations")
    corr = np.corrcoef(x, rowvar=False)
    if method == "average_correlation":
        rho = float((corr.sum() - np.trace(corr)) / (n * (n - 1.0)))
        rho = min(max(rho, 0.0), 1.0)
        n_eff = rho + (1.0 - rho) * n
    else:
        eig = np.clip(np.linalg.eigvalsh(corr), 0.0, None)
        eig = eig * (n / eig.sum())
        if method == "effective_rank":
            p = eig[eig > 0] / n
            n_eff = float(np.exp(-np.sum(p * np.log(p))))
        elif method == "li_ji":
            # Eigenvalues are rounded at 1e-9 first: an exact integer computed as 4.999999999999 must not
            # contribute 1 + 0.999999999999.
            lam = np.round(eig, 9)
            n_eff = float(np.sum((lam >= 1.0) + (lam - np.floor(lam))))
        else:
            raise ValueError(f"stats: unknown method {method!r} (effective_rank, li_ji, average_correlation)")
    return float(min(max(n_eff, 1.0), float(n)))


# --------------------------------------------------------------------------------------------------------
# Probability of backtest overfitting (CSCV)
# --------------------------------------------------------------------------------------------------------


def _half_sharpe(mask: np.ndarray, s1: np.ndarray, s2: np.ndarray, counts: np.ndarray,
                 center: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio (ddof=1) of each column over the union of the blocks in each mask row,
    from per-block sums of centred returns (numerically safe: returns were centred per column)."""
    n = mask @ counts  # (C,)
    s = mask @ s1  # (C, N)
    ss = mask @ s2
    mean_c = s / n[:, None]
    var = np.maximum(ss - s * mean_c, 0.0) / (n[:, None] - 1.0)
    mean = center[None, :] + mean_c
    std = np.sqrt(var)
    # Rounding leaves var ~ eps * ss / n on a constant half, i.e. std ~ 1.5e-8 of the returns' size: a
    # half is flat (riskless) below 1e-7 of it, and earned nothing when its mean is below 1e-9 of it.
    size = np.abs(center)[None, :] + np.sqrt(ss / n[:, None])
    flat = std <= 1e-7 * size
    idle = flat & (np.abs(mean) <= 1e-9 * size)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(flat, np.sign(mean) * np.inf, mean / np.where(flat, 1.0, std))
    # No return and no risk in the half (e.g. a strategy that never traded there): Sharpe 0.
    return np.where(idle, 0.0, sharpe)


def _average_rank_of(values: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """Average (ties-shared) 1-based rank of values[i, picked[i]] within row i, as scipy's rankdata."""
    v = values[np.arange(values.shape[0]), picked][:, None]
    below = np.sum(values < v, axis=1)
    equal = np.sum(values == v, axis=1)
    return below + (equal + 1) / 2.0


def probability_of_backtest_overfitting(performance_matrix, n_splits: int = 16) -> float:
    r"""Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

    Bailey, D. H., Borwein, J. M., López de Prado, M. and Zhu, Q. J. (2017), "The Probability of
    Backtest Overfitting", *Journal of Computational Finance* 20(4), 39-69.

    ``performance_matrix`` is T x N: per-period returns of the N trials (configurations) of one search,
    rows in time order. The rows are cut into ``n_splits`` = S contiguous blocks of T // S rows (the last
    T mod S rows are dropped). For each of the C(S, S/2) ways to choose S/2 blocks as the in-sample set J
    (``itertools.combinations`` order; the complement is out of sample), the trial with the best
    in-sample per-period Sharpe ratio (first column on ties) is located in the out-of-sample ranking:
    ω = rank / (N + 1) (average rank on ties), λ = log(ω / (1 - ω)). PBO is the fraction of
    combinations with λ <= 0, i.e. where the in-sample winner ends at or below the out-of-sample median.
    Deterministic (no randomness); matches ffn's ``calc_prob_backtest_overfitting`` with its default metric.

    A trial without dispersion in a half gets Sharpe 0 if it earned nothing there (it did not trade),
    else +-inf. Pure noise gives PBO near 1/2; a real edge among noise gives PBO near 0.
    """
    x = np.asarray(performance_matrix, dtype=np.float64)
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2 or n_splits % 2:
        raise ValueError("stats: n_splits must be an even integer >= 2")
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("stats: performance_matrix must be T x N with N >= 2 trials")
    if not np.all(np.isfinite(x)):
        raise ValueError("stats: performance_matrix must be finite")
    s = int(n_splits)
    rows = (x.shape[0] // s) * s
    if rows // s < 1 or rows // 2 < 2:
        raise ValueError(f"stats: T = {x.shape[0]} rows is too short for {s} splits (each half needs >= 2 rows)")
    x = x[:rows]
    center = x.mean(axis=0)
    blocks = (x - center).reshape(s, rows // s, x.shape[1])
    s1 = blocks.sum(axis=1)  # (S, N)
    s2 = (blocks**2).sum(axis=1)
    counts = np.full(s, rows // s, dtype=np.float64)

    n_trials = x.shape[1]
    below_or_at_median = 0
    total = 0
    combos = itertools.combinations(range(s), s // 2)
    chunk = max(1, min(4096, 2_000_000 // n_trials))
    while True:
        batch = list(itertools.islice(combos, chunk))
        if not batch:
            break
        mask = np.zeros((len(batch), s))
        mask[np.repeat(np.arange(len(batch)), s // 2), np.asarray(batch).ravel()] = 1.0
        perf_is = _half_sharpe(mask, s1, s2, counts, center)
        perf_oos = _half_sharpe(1.0 - mask, s1, s2, counts, center)
        winner = np.argmax(perf_is, axis=1)
        omega = _average_rank_of(perf_oos, winner) / (n_trials + 1.0)
        below_or_at_median += int(np.sum(np.log(omega / (1.0 - omega)) <= 0.0))
        total += len(batch)
    return below_or_at_median / total


# --------------------------------------------------------------------------------------------------------
# White's Reality Check and Hansen's SPA (through arch)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapTestResult:
    """Outcome of :func:`reality_check` or :func:`spa_test`.

    ``pvalue`` is the test's p-value (RC: arch's "upper"; SPA: arch's "consistent", on studentised
    differentials); ``pvalues`` holds arch's three ("lower", "consistent", "upper") for the report.
    ``statistic`` is sqrt(T) * max_k mean(d_k) for the RC and max(sqrt(T) * max_k mean(d_k) / ω_k, 0)
    for the SPA, with d_k = candidate_k - benchmark returns. ``best`` is the column index of the
    candidate with the largest (studentised, for the SPA) mean differential.
    """

    test: str
    pvalue: float
    pvalues: dict[str, float]
    statistic: float
    block_size: float
    reps: int
    n_obs: int
    n_models: int
    studentized: bool
    best: int

    def as_dict(self) -> dict:
        return asdict(self)


def stationary_bootstrap_variance(x, block_size: float) -> np.ndarray:
    r"""Long-run variance ω² of each column of ``x`` as the stationary bootstrap sees it (T * Var* of the
    bootstrap mean), with mean block length ``block_size`` (p = 1 / block_size):

    .. math:: \hat\omega^2 = \hat\gamma_0 + 2\sum_{i=1}^{T-1} \kappa(i)\,\hat\gamma_i, \qquad
              \kappa(i) = \left(1 - \frac{i}{T}\right)(1 - p)^i + \frac{i}{T}(1 - p)^{T - i}

    Politis, D. N. and Romano, J. P. (1994), "The Stationary Bootstrap", *JASA* 89(428), 1303-1313;
    the estimator of Hansen (2005, §2.3) and of arch's ``SPA`` (its ``_compute_variance``), computed here
    with FFT autocovariances instead of a loop over lags.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    t = x.shape[0]
    p = 1.0 / float(block_size)
    d = x - x.mean(axis=0)
    nfft = 1 << (2 * t - 1).bit_length()
    f = np.fft.rfft(d, n=nfft, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:t] / t  # gamma_0 .. gamma_{T-1}
    i = np.arange(1, t, dtype=np.float64)
    kappa = (1.0 - i / t) * (1.0 - p) ** i + (i / t) * (1.0 - p) ** (t - i)
    return acov[0] + 2.0 * (kappa[:, None] * acov[1:]).sum(axis=0)


def _differentials(candidate_returns, benchmark_returns) -> np.ndarray:
    cand = np.asarray(candidate_returns, dtype=np.float64)
    if cand.ndim == 1:
        cand = cand[:, None]
    if cand.ndim != 2 or cand.shape[0] < 10 or cand.shape[1] < 1:
        raise ValueError("stats: candidate_returns must be T x k (or length T) with T >= 10")
    bench = np.asarray(benchmark_returns, dtype=np.float64)
    if bench.ndim == 0:
        bench = np.full(cand.shape[0], float(bench))
    if bench.shape != (cand.shape[0],):
        raise ValueError(f"stats: benchmark_returns must have length T = {cand.shape[0]} (or be a scalar)")
    d = cand - bench[:, None]
    if not np.all(np.isfinite(d)):
        raise ValueError("stats: returns must be finite")
    return d


def _default_block_size(d: np.ndarray) -> float:
    """Politis-White (2004; corrected by Patton, Politis & White 2009) stationary-bootstrap block length
    of each non-constant differential, through arch's ``optimal_block_length``; their mean, at least 1."""
    from arch.bootstrap import optimal_block_length

    varying = d[:, np.std(d, axis=0) > 0]
    if varying.shape[1] == 0:
        return 1.0
    table = optimal_block_length(varying)
    # arch 8 names the column "stationary"; its docstring and earlier releases say "b_sb".
    b = np.asarray(table["stationary" if "stationary" in table.columns else "b_sb"], dtype=np.float64)
    b = b[np.isfinite(b)]
    return float(max(1.0, b.mean())) if b.size else 1.0


def _run_spa(d: np.ndarray, block_size: float, reps: int, seed) -> dict[str, float]:
    from arch.bootstrap import SPA

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # arch's SPA takes losses: loss_diff = benchmark_loss - model_loss. With benchmark loss 0 and model
    # losses -d, its loss differential is exactly d (positive = candidate beats the benchmark).
    spa = SPA(np.zeros(d.shape[0]), -d, block_size=block_size, reps=reps, bootstrap="stationary",
              studentize=False, seed=rng)
    spa.compute()
    return {k: float(v) for k, v in spa.pvalues.items()}


def _check_bootstrap_args(reps: int, block_size: float | None, d: np.ndarray) -> float:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError("stats: reps must be a positive integer")
    if block_size is None:
        return _default_block_size(d)
    if not (math.isfinite(block_size) and block_size >= 1):
        raise ValueError("stats: block_size must be a finite number >= 1")
    return float(block_size)


def reality_check(candidate_returns, benchmark_returns, *, block_size: float | None = None,
                  reps: int = 1000, seed: int | np.random.Generator = 0) -> BootstrapTestResult:
    """White's Reality Check for data snooping: H0 = no candidate beats the benchmark in mean return.

    White, H. (2000), "A Reality Check for Data Snooping", *Econometrica* 68(5), 1097-1126.

    ``candidate_returns`` is T x k (every configuration tried, not only the winner), ``benchmark_returns``
    length T (or a scalar, e.g. 0 for cash); d_k = candidate_k - benchmark. The statistic is
    V = sqrt(T) max_k mean(d_k), **not studentised** (White's form). Its null distribution comes from
    arch's ``SPA`` with the stationary bootstrap (Politis & Romano 1994) of mean block length
    ``block_size`` (default: Politis-White on the differentials, see ``_default_block_size``), ``reps``
    replications and a generator seeded by ``seed``. The p-value is arch's **"upper"** p-value: every
    bootstrap mean is recentred at its sample mean, i.e. the least favourable configuration of the null
    (all candidates exactly as good as the benchmark), which is White's Reality Check. (arch 8.0's
    ``studentize`` flag does not change its p-values, only its summary label; see :func:`spa_test`.)
    """
    d = _differentials(candidate_returns, benchmark_returns)
    b = _check_bootstrap_args(reps, block_size, d)
    pvalues = _run_spa(d, b, int(reps), seed)
    means = d.mean(axis=0)
    return BootstrapTestResult(
        test="reality_check", pvalue=pvalues["upper"], pvalues=pvalues,
        statistic=float(math.sqrt(d.shape[0]) * means.max()), block_size=b, reps=int(reps),
        n_obs=d.shape[0], n_models=d.shape[1], studentized=False, best=int(np.argmax(means)),
    )


def spa_test(candidate_returns, benchmark_returns, *, block_size: float | None = None,
             reps: int = 1000, seed: int | np.random.Generator = 0) -> BootstrapTestResult:
    """Hansen's test of Superior Predictive Ability: H0 = no candidate beats the benchmark in mean return.

    Hansen, P. R. (2005), "A Test for Superior Predictive Ability", *Journal of Business & Economic
    Statistics* 23(4), 365-380.

    Same inputs and bootstrap as :func:`reality_check`. Two changes make it Hansen's SPA:

    * **Studentisation.** Each differential d_k is divided by ω_k, the square root of its stationary
      bootstrap long-run variance (:func:`stationary_bootstrap_variance`, Hansen's §2.3 estimator, the
      same kernel arch uses) *before* it is handed to arch. arch 8.0's ``SPA.compute`` compares raw
      means whatever its ``studentize`` flag says (the flag only labels the summary), so studentising
      the data is how the statistic max_k sqrt(T) mean(d_k) / ω_k is obtained; the bootstrap means and
      arch's consistent threshold are then on the same scale (its variance of d_k / ω_k is exactly 1).
      A constant differential (ω = 0) is left unscaled.
    * **Recentring.** The p-value is arch's **"consistent"** one: candidates whose studentised mean is
      below -sqrt(2 log log T) are treated as irrelevant and not recentred (Hansen's μ^c), which stops
      poor candidates from inflating the p-value as they do in the RC.

    One detail differs from Hansen's text: he floors the statistic at 0 (max(T_SPA, 0)); arch compares
    the unfloored maximum, which only matters when every candidate is worse than the benchmark, and then
    gives a p-value at least as large (more conservative). ``statistic`` in the result is floored.
    """
    d = _differentials(candidate_returns, benchmark_returns)
    b = _check_bootstrap_args(reps, block_size, d)
    omega = np.sqrt(np.maximum(stationary_bootstrap_variance(d, b), 0.0))
    scale = np.where(omega > 1e-300, omega, 1.0)
    z = d / scale
    pvalues = _run_spa(z, b, int(reps), seed)
    t_means = math.sqrt(d.shape[0]) * z.mean(axis=0)
    return BootstrapTestResult(
        test="spa", pvalue=pvalues["consistent"], pvalues=pvalues, statistic=float(max(t_means.max(), 0.0)),
        block_size=b, reps=int(reps), n_obs=d.shape[0], n_models=d.shape[1], studentized=True,
        best=int(np.argmax(t_means)),
    )


# --------------------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    """One deploy gate applied to one strategy: ``passed`` is ``value >= threshold`` for direction "min"
    and ``value <= threshold`` for "max"; a NaN value never passes."""

    name: str
    metric: str
    value: float
    threshold: float
    direction: Literal["min", "max"]
    passed: bool

    @property
    def reason(self) -> str:
        """One line for a kill record, e.g. ``dsr_min: dsr = 0.9004 < 0.95``."""
        op = (">=" if self.passed else "<") if self.direction == "min" else ("<=" if self.passed else ">")
        return f"{self.name}: {self.metric} = {self.value:.6g} {op} {self.threshold:.6g}"

    def as_dict(self) -> dict:
        return asdict(self)


def _parse_gate(name: str) -> tuple[str, Literal["min", "max"]]:
    for suffix, direction in (("_min", "min"), ("_max", "max")):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], direction
    for prefix, direction in (("min_", "min"), ("max_", "max")):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):], direction
    raise ValueError(f"stats: gate {name!r} must be named METRIC_min, METRIC_max, min_METRIC or max_METRIC")


def apply_gates(values: Mapping[str, float], thresholds: Mapping[str, float]) -> tuple[GateResult, ...]:
    """Apply every gate of ``thresholds`` (the config's gates section) to one strategy's ``values``.

    A gate's name gives its metric and direction: ``dsr_min`` requires ``values["dsr"] >= threshold``,
    ``pbo_max`` requires ``values["pbo"] <= threshold``, ``min_trades`` requires ``values["trades"] >=
    threshold`` (``max_X`` likewise). Example thresholds: ``{"dsr_min": 0.95, "psr_min": 0.95,
    "pbo_max": 0.5, "spa_pvalue_max": 0.05, "min_trades": 30}``. Results come sorted by gate name, so the
    order (and the first failure, the kill reason) does not depend on how the dict was built. A metric
    missing from ``values`` is an error (a gate that cannot be evaluated must not pass silently); a NaN
    value fails its gate. The strategy survives when every result has ``passed``.
    """
    results = []
    for name in sorted(thresholds):
        metric, direction = _parse_gate(name)
        threshold = float(thresholds[name])
        if not math.isfinite(threshold):
            raise ValueError(f"stats: gate {name!r} has a non-finite threshold {thresholds[name]!r}")
        if metric not in values:
            raise KeyError(f"stats: gate {name!r} needs the value {metric!r}, which was not computed")
        value = float(values[metric])
        passed = value >= threshold if direction == "min" else value <= threshold
        results.append(GateResult(name=name, metric=metric, value=value, threshold=threshold,
                                  direction=direction, passed=bool(passed)))
    return tuple(results)
