"""Train/test splitters for research: walk-forward folds and combinatorially purged cross-validation.

Samples are trades (or labels): sample i lives on the bar interval [entry[i], exit[i]] (both inclusive,
bar indices), and samples are ordered by entry (non-decreasing). Everything here is deterministic.

Walk-forward (Pardo, *The Evaluation and Optimization of Trading Strategies*, 2008): test windows of
`test_size` bars tile the bar axis, the first starting at bar `train_size + purge`; fold k's test window
is [t_k, t_k + test_size) with t_k = train_size + purge + k * step. Its training window ends `purge` bars
before the test starts, [t_k - purge - train_size, t_k - purge) when rolling, [0, t_k - purge) when
anchored. Only whole test windows are produced (a trailing partial window is dropped). Training data
always precede their test data here, so an embargo (which guards training data that *follow* a test
set) never binds and walk-forward takes none; `purge` is the gap that covers labels or exits that look
forward from the end of the training window. At sample level, `walk_forward_splits` puts a trade in the
test set when it enters inside the test window, and in the training set when it enters inside the
training window *and exits before the test window starts* (purged by exit time).

Combinatorially purged cross-validation (López de Prado, *Advances in Financial Machine Learning*, 2018,
ch. 7 and 12): the samples are cut into N contiguous groups (`np.array_split` of the sample order, as in
AFML's PurgedKFold: the first n mod N groups hold one sample more); each of the C(N, k) ways to choose k
test groups is one split, in `itertools.combinations` order. Adjacent test groups merge into one test
block; a block spans the bars [min entry, max exit] of its samples. A training sample is dropped (purged)
when its interval [entry, exit] overlaps a test block, and embargoed when it enters within `embargo`
bars after the block's last exit bar: together, sample i is dropped when
``entry[i] <= block_end + embargo and exit[i] >= block_start``. Because samples are sorted by entry,
testing against the block span is the same as testing against every test sample's own interval
(AFML's getTrainTimes). The splits recombine into φ = k/N · C(N, k) backtest paths.

Difference from skfolio's ``CombinatorialPurgedCV`` (used only as a test reference): skfolio assigns
groups of n // N rows with the remainder in the last group, and purges a fixed number of *rows*
(`purged_size`) on each side of a test block and embargoes `embargo_size` rows after it, without looking
at label intervals. The two agree when every sample is one bar (entry = exit = its row), N divides n,
`purged_size` = 0 and `embargo_size` equals `embargo` here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Split",
    "WalkForwardFold",
    "backtest_paths",
    "combinatorial_purged_splits",
    "group_bounds",
    "n_backtest_paths",
    "purged_train_mask",
    "walk_forward_folds",
    "walk_forward_splits",
]


@dataclass(frozen=True)
class WalkForwardFold:
    """One walk-forward fold on the bar axis: half-open windows [start, stop)."""

    index: int
    train_start: int
    train_stop: int
    test_start: int
    test_stop: int

    @property
    def train(self) -> slice:
        """The training window as a slice of the bar axis."""
        return slice(self.train_start, self.train_stop)

    @property
    def test(self) -> slice:
        """The test window as a slice of the bar axis."""
        return slice(self.test_start, self.test_stop)


@dataclass(frozen=True)
class Split:
    """One train/test split of samples: sorted sample indices (int64) and the test groups (CPCV) or fold."""

    train: np.ndarray
    test: np.ndarray
    test_groups: tuple[int, ...]


def _check_nonnegative_int(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def walk_forward_folds(n_bars: int, train_size: int, test_size: int, *, anchored: bool = False,
                       step: int | None = None, purge: int = 0) -> list[WalkForwardFold]:
    """Walk-forward folds over `n_bars` bars (layout in the module docstring); `step` defaults to `test_size`."""
    n_bars = _check_nonnegative_int("n_bars", n_bars)
    train_size = _check_nonnegative_int("train_size", train_size, 1)
    test_size = _check_nonnegative_int("test_size", test_size, 1)
    purge = _check_nonnegative_int("purge", purge)
    step = test_size if step is None else _check_nonnegative_int("step", step, 1)
    folds = []
    start = train_size + purge
    while start + test_size <= n_bars:
        train_stop = start - purge
        folds.append(WalkForwardFold(len(folds), 0 if anchored else train_stop - train_size, train_stop,
                                     start, start + test_size))
        start += step
    return folds


def _check_intervals(entry: np.ndarray, exit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    entry = np.asarray(entry)
    exit = np.asarray(exit)
    if entry.ndim != 1 or exit.shape != entry.shape:
        raise ValueError(f"entry and exit must be 1-D arrays of one length, got shapes {entry.shape} and {exit.shape}")
    if not (np.issubdtype(entry.dtype, np.integer) and np.issubdtype(exit.dtype, np.integer)):
        if entry.size and not (np.all(entry == np.round(entry)) and np.all(exit == np.round(exit))):
            raise ValueError("entry and exit must be integer bar indices")
    entry = entry.astype(np.int64)
    exit = exit.astype(np.int64)
    if np.any(exit < entry):
        i = int(np.argmax(exit < entry))
        raise ValueError(f"sample {i} exits before it enters (entry {entry[i]}, exit {exit[i]})")
    if np.any(np.diff(entry) < 0):
        raise ValueError("samples must be sorted by entry (non-decreasing)")
    return entry, exit


def walk_forward_splits(entry: np.ndarray, exit: np.ndarray, folds: list[WalkForwardFold]) -> list[Split]:
    """Sample-level walk-forward splits: test = trades entering in the test window; train = trades entering in
    the training window that exit before the test window starts. `test_groups` holds the fold index."""
    entry, exit = _check_intervals(entry, exit)
    out = []
    for f in folds:
        test = np.flatnonzero((entry >= f.test_start) & (entry < f.test_stop))
        train = np.flatnonzero((entry >= f.train_start) & (entry < f.train_stop) & (exit < f.test_start))
        out.append(Split(train, test, (f.index,)))
    return out


def group_bounds(n_samples: int, n_groups: int) -> np.ndarray:
    """Boundaries (length N + 1) of N contiguous groups of samples, `np.array_split` sizes."""
    n_samples = _check_nonnegative_int("n_samples", n_samples)
    n_groups = _check_nonnegative_int("n_groups", n_groups, 1)
    if n_groups > n_samples:
        raise ValueError(f"cannot cut {n_samples} samples into {n_groups} non-empty groups")
    q, r = divmod(n_samples, n_groups)
    sizes = np.full(n_groups, q, dtype=np.int64)
    sizes[:r] += 1
    return np.concatenate(([0], np.cumsum(sizes)))


def purged_train_mask(entry: np.ndarray, exit: np.ndarray, test_mask: np.ndarray, embargo: int = 0) -> np.ndarray:
    """Training mask for one split: every sample not in the test set whose interval does not overlap a test
    block and does not enter within `embargo` bars after a block's last exit (rule in the module docstring).
    A test block is a maximal run of consecutive test samples in sample order."""
    entry, exit = _check_intervals(entry, exit)
    embargo = _check_nonnegative_int("embargo", embargo)
    test_mask = np.asarray(test_mask, dtype=bool)
    if test_mask.shape != entry.shape:
        raise ValueError(f"test_mask has shape {test_mask.shape}, expected {entry.shape}")
    train = ~test_mask
    edges = np.diff(np.concatenate(([0], test_mask.astype(np.int8), [0])))
    for lo, hi in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        start, end = entry[lo], exit[lo:hi].max()
        train &= ~((entry <= end + embargo) & (exit >= start))
    return train


def combinatorial_purged_splits(entry: np.ndarray, exit: np.ndarray, n_groups: int, n_test_groups: int,
                                embargo: int = 0) -> list[Split]:
    """All C(N, k) combinatorially purged splits, in `itertools.combinations` order of the test groups."""
    entry, exit = _check_intervals(entry, exit)
    n_groups = _check_nonnegative_int("n_groups", n_groups, 2)
    n_test_groups = _check_nonnegative_int("n_test_groups", n_test_groups, 1)
    if n_test_groups >= n_groups:
        raise ValueError(f"n_test_groups ({n_test_groups}) must be smaller than n_groups ({n_groups})")
    bounds = group_bounds(entry.size, n_groups)
    out = []
    for groups in itertools.combinations(range(n_groups), n_test_groups):
        test_mask = np.zeros(entry.size, dtype=bool)
        for g in groups:
            test_mask[bounds[g]:bounds[g + 1]] = True
        train = purged_train_mask(entry, exit, test_mask, embargo)
        out.append(Split(np.flatnonzero(train), np.flatnonzero(test_mask), groups))
    return out


def n_backtest_paths(n_groups: int, n_test_groups: int) -> int:
    """φ[N, k] = k/N · C(N, k) = C(N - 1, k - 1): the number of backtest paths CPCV recombines (AFML §12.4)."""
    n_groups = _check_nonnegative_int("n_groups", n_groups, 1)
    n_test_groups = _check_nonnegative_int("n_test_groups", n_test_groups, 1)
    if n_test_groups > n_groups:
        raise ValueError(f"n_test_groups ({n_test_groups}) must not exceed n_groups ({n_groups})")
    return math.comb(n_groups - 1, n_test_groups - 1)


def backtest_paths(n_groups: int, n_test_groups: int) -> np.ndarray:
    """Path assembly, shape (φ, N): entry [p, g] is the index of the split whose test prediction for group g
    forms part of path p. Each group is tested in exactly φ splits; path p takes the p-th of them in split
    order (AFML §12.4, fig. 12.1)."""
    phi = n_backtest_paths(n_groups, n_test_groups)
    paths = np.empty((phi, n_groups), dtype=np.int64)
    seen = np.zeros(n_groups, dtype=np.int64)
    for s, groups in enumerate(itertools.combinations(range(n_groups), n_test_groups)):
        for g in groups:
            paths[seen[g], g] = s
            seen[g] += 1
    return paths
