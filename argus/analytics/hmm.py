"""Gaussian hidden Markov models for research: a deterministic Baum-Welch fit and canonical JSON.

The fit runs in research; its parameters are recorded in the log (a ConfigRecorded event carrying
``to_json(params)``) and the online forward filter (argus.kernels.hmm.HmmReducer) reads exactly those
parameters back with ``from_json``, so a replay uses the same numbers bit for bit.

Emissions are 1-D Gaussians N(mu_j, var_j). States are ordered by variance, ascending (ties by mean,
then by the fit's order), so that state 0 is always the calmest regime and labels are stable across fits.

Pure numpy; imports nothing from argus.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

MIN_STATES = 2
MAX_STATES = 8
STOCHASTIC_TOL = 1e-9
_KEYS = ("means", "n_states", "startprob", "transmat", "variances")


@dataclass(frozen=True)
class HmmParams:
    """A Gaussian HMM: startprob (k,), transmat (k, k) row-stochastic, means (k,), variances (k,) > 0."""

    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    @property
    def n_states(self) -> int:
        return int(len(self.means))


def _bad(field: str, value, rule: str) -> ValueError:
    return ValueError(f"hmm: field '{field}' = {value!r} must be {rule}")


def validate(params: HmmParams) -> HmmParams:
    """Check shapes, finiteness, stochastic rows and positive variances; return params as float64 arrays."""
    means = np.asarray(params.means, dtype=np.float64)
    if means.ndim != 1 or not MIN_STATES <= len(means) <= MAX_STATES:
        raise _bad("n_states", int(means.size) if means.ndim == 1 else means.shape,
                   f"an integer in [{MIN_STATES}, {MAX_STATES}] (the length of means)")
    k = len(means)
    arrays = {"startprob": (np.asarray(params.startprob, dtype=np.float64), (k,)),
              "transmat": (np.asarray(params.transmat, dtype=np.float64), (k, k)),
              "means": (means, (k,)),
              "variances": (np.asarray(params.variances, dtype=np.float64), (k,))}
    for name, (arr, shape) in arrays.items():
        if arr.shape != shape:
            raise _bad(name, arr.tolist(), f"of shape {shape} for n_states = {k}")
        if not np.all(np.isfinite(arr)):
            raise _bad(name, arr.tolist(), "finite")
    start, trans, _, var = (a for a, _ in arrays.values())
    if np.any(start < 0) or abs(math.fsum(start) - 1.0) > STOCHASTIC_TOL:
        raise _bad("startprob", start.tolist(), f"non-negative and sum to 1 (within {STOCHASTIC_TOL})")
    for i in range(k):
        if np.any(trans[i] < 0) or abs(math.fsum(trans[i]) - 1.0) > STOCHASTIC_TOL:
            raise _bad(f"transmat[{i}]", trans[i].tolist(),
                       f"a non-negative row that sums to 1 (within {STOCHASTIC_TOL})")
    if np.any(var <= 0):
        raise _bad("variances", var.tolist(), "> 0")
    return HmmParams(start, trans, means, var)


def to_json(params: HmmParams) -> str:
    """Canonical JSON (sorted keys, no spaces, floats written by repr so they round-trip exactly)."""
    p = validate(params)
    doc = {"n_states": p.n_states, "startprob": [float(v) for v in p.startprob],
           "transmat": [[float(v) for v in row] for row in p.transmat],
           "means": [float(v) for v in p.means], "variances": [float(v) for v in p.variances]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


def from_json(text: str) -> HmmParams:
    """Parse and validate to_json's output (errors name the field, its value and the rule)."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise _bad("json", text if isinstance(text, str) and len(text) < 80 else type(text).__name__,
                   f"a JSON object ({exc})") from None
    if not isinstance(doc, dict):
        raise _bad("json", doc, "a JSON object")
    if sorted(doc) != sorted(_KEYS):
        raise _bad("keys", sorted(doc), f"exactly {list(_KEYS)}")
    n = doc["n_states"]
    if not isinstance(n, int) or isinstance(n, bool) or not MIN_STATES <= n <= MAX_STATES:
        raise _bad("n_states", n, f"an integer in [{MIN_STATES}, {MAX_STATES}]")
    for name in ("startprob", "transmat", "means", "variances"):
        value = doc[name]
        flat = value if isinstance(value, list) else [None]
        if name == "transmat":
            flat = [v for row in flat for v in (row if isinstance(row, list) else [None])]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            raise _bad(name, doc[name], "a list of numbers" if name != "transmat" else "a list of lists of numbers")
    if len(doc["means"]) != n:
        raise _bad("means", doc["means"], f"of length n_states = {n}")
    try:
        trans = np.array(doc["transmat"], dtype=np.float64)
    except ValueError:
        raise _bad("transmat", doc["transmat"], f"of shape ({n}, {n})") from None
    return validate(HmmParams(np.array(doc["startprob"], dtype=np.float64), trans,
                              np.array(doc["means"], dtype=np.float64),
                              np.array(doc["variances"], dtype=np.float64)))


def sort_by_variance(params: HmmParams) -> HmmParams:
    """The same model with states relabelled by variance ascending (ties: mean, then old index)."""
    k = len(params.means)
    order = np.array(sorted(range(k), key=lambda j: (params.variances[j], params.means[j], j)))
    return HmmParams(params.startprob[order].copy(), params.transmat[np.ix_(order, order)].copy(),
                     params.means[order].copy(), params.variances[order].copy())


def _scaled_emissions(x: np.ndarray, means: np.ndarray, variances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """B[t, j] / exp(m_t) and m_t = max_j log N(x_t; mu_j, var_j) (no underflow)."""
    logb = -0.5 * np.log(2.0 * np.pi * variances)[None, :] - 0.5 * (x[:, None] - means[None, :]) ** 2 / variances
    m = logb.max(axis=1)
    return np.exp(logb - m[:, None]), m


def _e_step(x, start, trans, means, variances):
    """Scaled forward-backward: (log-likelihood, gamma (T, k), xi summed over t (k, k))."""
    n, k = len(x), len(means)
    b, m = _scaled_emissions(x, means, variances)
    alpha = np.empty((n, k))
    c = np.empty(n)
    a = start * b[0]
    c[0] = a.sum()
    alpha[0] = a / c[0]
    for t in range(1, n):
        a = (alpha[t - 1] @ trans) * b[t]
        c[t] = a.sum()
        alpha[t] = a / c[t]
    beta = np.empty((n, k))
    beta[-1] = 1.0
    for t in range(n - 2, -1, -1):
        beta[t] = trans @ (b[t + 1] * beta[t + 1]) / c[t + 1]
    gamma = alpha * beta
    gamma /= gamma.sum(axis=1, keepdims=True)
    xi = trans * (alpha[:-1].T @ (b[1:] * beta[1:] / c[1:, None]))
    loglik = float(np.sum(np.log(c)) + np.sum(m))
    return loglik, gamma, xi


def _em(x, means, variances, n_iter, tol, floor):
    k = len(means)
    start = np.full(k, 1.0 / k)
    trans = np.full((k, k), 0.1 / (k - 1))
    np.fill_diagonal(trans, 0.9)
    prev = -np.inf
    loglik = prev
    for _ in range(n_iter):
        loglik, gamma, xi = _e_step(x, start, trans, means, variances)
        start = gamma[0] / gamma[0].sum()
        trans = xi / xi.sum(axis=1, keepdims=True)
        w = gamma.sum(axis=0)
        means = (gamma * x[:, None]).sum(axis=0) / w
        variances = np.maximum((gamma * (x[:, None] - means[None, :]) ** 2).sum(axis=0) / w, floor)
        if loglik - prev < tol:
            break
        prev = loglik
    loglik, _, _ = _e_step(x, start, trans, means, variances)
    return loglik, HmmParams(start, trans, means, variances)


def _init_groups(x: np.ndarray, order: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    groups = np.array_split(x[order], k)
    return (np.array([g.mean() for g in groups]), np.array([g.var() for g in groups]))


def fit_gaussian_hmm(x, n_states: int = 2, n_iter: int = 200, tol: float = 1e-8, seed: int = 0) -> HmmParams:
    """Baum-Welch (scaled forward-backward) fit of a Gaussian HMM to the 1-D series x.

    Deterministic: two fixed initialisations are run, states split by value (quantile groups of x) and
    by distance to the median (quantile groups of |x - median|, which separates volatility regimes);
    each starts from a uniform startprob and a transmat with 0.9 on the diagonal, and the fit with the
    higher log-likelihood wins (the first on ties). Variances are floored at 1e-6 * var(x). Iteration
    stops when the log-likelihood improves by less than tol, or after n_iter iterations. `seed` seeds a
    Philox generator that only breaks exact ties in the initial groups (tiny jitter, 1e-9 * sd). The
    result's states are sorted by variance ascending (see sort_by_variance).
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if not MIN_STATES <= n_states <= MAX_STATES:
        raise _bad("n_states", n_states, f"an integer in [{MIN_STATES}, {MAX_STATES}]")
    if len(x) < 10 * n_states:
        raise _bad("x", f"{len(x)} observations", f"at least 10 * n_states = {10 * n_states}")
    if not np.all(np.isfinite(x)):
        raise _bad("x", "non-finite values", "finite")
    total_var = float(x.var())
    if not total_var > 0:
        raise _bad("x", "a constant series", "a series with variance > 0")
    floor = 1e-6 * total_var
    rng = np.random.Generator(np.random.Philox(seed))
    jitter = rng.standard_normal(len(x)) * 1e-9 * math.sqrt(total_var)
    best = None
    for key in (x + jitter, np.abs(x - np.median(x)) + np.abs(jitter)):
        order = np.argsort(key, kind="stable")
        means, variances = _init_groups(x, order, n_states)
        variances = np.maximum(variances, floor)
        loglik, params = _em(x, means, variances, n_iter, tol, floor)
        if best is None or loglik > best[0]:
            best = (loglik, params)
    p = sort_by_variance(best[1])
    return validate(p)
