"""A straightforward numpy reference of the truncated BOCPD of argus.kernels.bocpd (Adams & MacKay 2007),
vectorised over run lengths, one observation at a time. Used by the tests (the oracle) and the benchmark.

Same algorithm as the Cython reducer: Normal-Gamma prior, Student-t predictive, constant hazard, run
lengths 0..max_run with max_run meaning "at least max_run" (growth of max_run - 1 and max_run merged, its
statistics those grown from max_run - 1), log-space normalisation, p_change = P(r_t < 5)."""

from __future__ import annotations

import math

import numpy as np

CHANGE_WINDOW = 5


class BocpdReference:
    """One series: step(x) -> (p_change, map_run_length)."""

    def __init__(self, hazard_lambda: float = 250.0, max_run: int = 300, mu0: float = 0.0, kappa0: float = 1.0,
                 alpha0: float = 1.0, beta0: float = 1e-4) -> None:
        self.R = max_run
        self.mu0, self.beta0 = mu0, beta0
        self.log_h = math.log(1.0 / hazard_lambda)
        self.log_1mh = math.log1p(-1.0 / hazard_lambda)
        r = np.arange(max_run + 1, dtype=np.float64)
        k = kappa0 + r
        a = alpha0 + 0.5 * r
        self.kap = k
        self.apow = a + 0.5
        self.qfac = k / (2.0 * (k + 1.0))
        lg = np.array([math.lgamma(v) for v in a + 0.5]) - np.array([math.lgamma(v) for v in a])
        self.lconst = lg - 0.5 * np.log(2.0 * math.pi * (k + 1.0) / k)
        self.lw = np.array([0.0])          # log P(r_t = r | x_1:t), r = 0..len-1
        self.mu = np.array([mu0])
        self.beta = np.array([beta0])

    def step(self, x: float) -> tuple[float, int]:
        n = len(self.lw)
        dev = x - self.mu
        t = (self.lw + self.lconst[:n] - 0.5 * np.log(self.beta)
             - self.apow[:n] * np.log1p(self.qfac[:n] * dev * dev / self.beta))
        m = t.max()
        log_ev = m + math.log(np.exp(t - m).sum())
        mu_g = (self.kap[:n] * self.mu + x) / (self.kap[:n] + 1.0)
        beta_g = self.beta + self.qfac[:n] * dev * dev
        grown = t + self.log_1mh - log_ev
        if n == self.R + 1:  # truncation: R - 1 and R both grow into R
            merged = np.logaddexp(t[-2], t[-1]) + self.log_1mh - log_ev
            grown = np.concatenate([grown[:-2], [merged]])
            mu_g, beta_g = mu_g[:-1], beta_g[:-1]
        self.lw = np.concatenate([[self.log_h], grown])
        self.mu = np.concatenate([[self.mu0], mu_g])
        self.beta = np.concatenate([[self.beta0], beta_g])
        return float(np.exp(self.lw[:CHANGE_WINDOW]).sum()), int(np.argmax(self.lw))


def run_series(closes, **params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_change, map_run_length, log_return) per close, as the reducer's rows for one slot (all closes
    finite and > 0): NaN, -1, NaN for the first."""
    closes = np.asarray(closes, dtype=np.float64)
    n = len(closes)
    p = np.full(n, np.nan)
    run = np.full(n, -1, dtype=np.int64)
    ret = np.full(n, np.nan)
    model = BocpdReference(**params)
    for i in range(1, n):
        x = math.log(closes[i] / closes[i - 1])
        ret[i] = x
        p[i], run[i] = model.step(x)
    return p, run, ret
