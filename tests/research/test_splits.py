"""Walk-forward folds and combinatorially purged cross-validation (argus.research.splits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argus.research.splits import (
    WalkForwardFold,
    backtest_paths,
    combinatorial_purged_splits,
    group_bounds,
    n_backtest_paths,
    purged_train_mask,
    walk_forward_folds,
    walk_forward_splits,
)


def _windows(folds: list[WalkForwardFold]) -> list[tuple[int, int, int, int]]:
    return [(f.train_start, f.train_stop, f.test_start, f.test_stop) for f in folds]


def test_rolling_walk_forward_with_purge_leaves_a_gap_and_drops_the_partial_window() -> None:
    folds = walk_forward_folds(10, train_size=4, test_size=2, purge=1)
    assert _windows(folds) == [(0, 4, 5, 7), (2, 6, 7, 9)]
    assert [f.index for f in folds] == [0, 1]
    assert folds[1].train == slice(2, 6) and folds[1].test == slice(7, 9)


def test_anchored_walk_forward_keeps_the_first_bar_in_every_training_window() -> None:
    assert _windows(walk_forward_folds(10, 4, 2, anchored=True)) == [(0, 4, 4, 6), (0, 6, 6, 8), (0, 8, 8, 10)]


def test_walk_forward_step_smaller_than_test_gives_overlapping_tests() -> None:
    assert _windows(walk_forward_folds(8, 3, 2, step=1)) == [(0, 3, 3, 5), (1, 4, 4, 6), (2, 5, 5, 7), (3, 6, 6, 8)]


def test_walk_forward_with_too_few_bars_has_no_fold_and_bad_sizes_are_refused() -> None:
    assert walk_forward_folds(5, 4, 2) == []
    with pytest.raises(ValueError):
        walk_forward_folds(10, 0, 2)
    with pytest.raises(ValueError):
        walk_forward_folds(10, 4, 2, purge=-1)


def test_walk_forward_splits_purge_training_trades_that_exit_inside_the_test_window() -> None:
    entry = np.array([0, 1, 2, 3, 5, 6, 8])
    exit_ = np.array([1, 4, 3, 5, 6, 9, 9])
    fold = walk_forward_folds(10, 4, 3)[0]  # train [0, 4), test [4, 7)
    (split,) = walk_forward_splits(entry, exit_, [fold])
    assert split.train.tolist() == [0, 2]  # 1 and 3 enter in training but exit at/after bar 4
    assert split.test.tolist() == [4, 5]  # entries 5 and 6; trade 5 exiting after the window still counts
    assert split.test_groups == (0,)


def test_group_bounds_follow_array_split_sizes() -> None:
    assert group_bounds(10, 3).tolist() == [0, 4, 7, 10]
    assert group_bounds(9, 3).tolist() == [0, 3, 6, 9]
    with pytest.raises(ValueError):
        group_bounds(2, 3)


def test_cpcv_hand_worked_purge_and_embargo() -> None:
    # Six one-bar samples except sample 1, which runs from bar 1 to bar 3. Groups: {0,1} {2,3} {4,5}.
    entry = np.arange(6)
    exit_ = np.array([0, 3, 2, 3, 4, 5])
    splits = combinatorial_purged_splits(entry, exit_, n_groups=3, n_test_groups=1)
    assert [s.test_groups for s in splits] == [(0,), (1,), (2,)]
    assert [s.test.tolist() for s in splits] == [[0, 1], [2, 3], [4, 5]]
    # Test block 0 spans bars [0, 3]: samples 2 and 3 lie inside it. Block 1 spans [2, 3]: sample 1 reaches it.
    assert [s.train.tolist() for s in splits] == [[4, 5], [0, 4, 5], [0, 1, 2, 3]]
    embargoed = combinatorial_purged_splits(entry, exit_, 3, 1, embargo=1)
    assert [s.train.tolist() for s in embargoed] == [[5], [0, 5], [0, 1, 2, 3]]


def test_cpcv_adjacent_test_groups_merge_into_one_block_with_one_embargo() -> None:
    entry = exit_ = np.arange(12)
    splits = combinatorial_purged_splits(entry, exit_, n_groups=4, n_test_groups=2, embargo=2)
    by_groups = {s.test_groups: s.train.tolist() for s in splits}
    assert by_groups[(0, 1)] == [8, 9, 10, 11]  # one block [0, 5]; embargo drops 6 and 7
    assert by_groups[(0, 2)] == [5, 11]  # blocks [0, 2] and [6, 8]; embargo drops 3, 4 and 9, 10
    assert by_groups[(2, 3)] == [0, 1, 2, 3, 4, 5]  # nothing follows the last block
    assert len(splits) == math.comb(4, 2)


def test_number_of_backtest_paths_is_k_over_n_times_n_choose_k() -> None:
    for n, k in [(3, 1), (3, 2), (6, 2), (10, 2), (10, 8), (12, 4)]:
        assert n_backtest_paths(n, k) == k * math.comb(n, k) // n
        assert k * math.comb(n, k) % n == 0
    assert n_backtest_paths(6, 2) == 5


def test_backtest_paths_use_each_split_exactly_k_times_and_test_every_group_once_per_path() -> None:
    n, k = 6, 2
    paths = backtest_paths(n, k)
    assert paths.shape == (5, 6)
    counts = np.bincount(paths.ravel(), minlength=math.comb(n, k))
    assert np.all(counts == k)
    splits = combinatorial_purged_splits(np.arange(30), np.arange(30), n, k)
    for p in range(paths.shape[0]):
        for g in range(n):
            assert g in splits[paths[p, g]].test_groups


def test_unsorted_or_inverted_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        combinatorial_purged_splits(np.array([0, 2, 1, 3]), np.array([0, 2, 1, 3]), 2, 1)
    with pytest.raises(ValueError, match="exits before"):
        combinatorial_purged_splits(np.array([0, 1, 2, 3]), np.array([0, 0, 2, 3]), 2, 1)
    with pytest.raises(ValueError):
        combinatorial_purged_splits(np.arange(6), np.arange(6), 3, 3)


@st.composite
def _samples(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    n = draw(st.integers(4, 40))
    gaps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))
    entry = np.cumsum(gaps)
    n_groups = draw(st.integers(2, min(n, 8)))
    return entry, entry + np.array(lengths), n_groups, draw(st.integers(1, n_groups - 1)), draw(st.integers(0, 5))


@settings(max_examples=60, deadline=None)
@given(_samples())
def test_no_training_sample_overlaps_or_follows_within_the_embargo_any_test_sample(
        case: tuple[np.ndarray, np.ndarray, int, int, int]) -> None:
    entry, exit_, n_groups, k, h = case
    splits = combinatorial_purged_splits(entry, exit_, n_groups, k, embargo=h)
    assert len(splits) == math.comb(n_groups, k)
    times_tested = np.zeros(entry.size, dtype=int)
    for s in splits:
        times_tested[s.test] += 1
        assert not np.intersect1d(s.train, s.test).size
        te, tx = entry[s.test], exit_[s.test]
        for i in range(entry.size):
            if i in s.test:
                continue
            # The brute-force rule, per test sample: overlap, or entry within h bars after its exit.
            dropped = bool(np.any((entry[i] <= tx + h) & (exit_[i] >= te)))
            assert (i in s.train) == (not dropped)
        for i in s.train:
            assert not np.any((entry[i] <= tx) & (exit_[i] >= te))  # no overlap
            assert not np.any((entry[i] > tx) & (entry[i] <= tx + h))  # embargo
    assert np.all(times_tested == math.comb(n_groups - 1, k - 1))


@settings(max_examples=30, deadline=None)
@given(_samples())
def test_purged_train_mask_is_deterministic_and_without_embargo_is_a_superset(
        case: tuple[np.ndarray, np.ndarray, int, int, int]) -> None:
    entry, exit_, _, _, h = case
    test = np.zeros(entry.size, dtype=bool)
    test[entry.size // 3: entry.size // 2 + 1] = True
    with_embargo = purged_train_mask(entry, exit_, test, h)
    assert np.array_equal(with_embargo, purged_train_mask(entry, exit_, test, h))
    assert np.all(purged_train_mask(entry, exit_, test, 0) >= with_embargo)


@pytest.mark.parametrize("embargo", [0, 2, 3])
def test_cpcv_agrees_with_skfolio_for_one_bar_samples_and_equal_groups(embargo: int) -> None:
    """skfolio purges rows, not label intervals; with one-bar samples (no overlap), N dividing n and
    purged_size=0, its row embargo is this bar embargo, so both must give the same splits and paths."""
    skfolio = pytest.importorskip("skfolio.model_selection")
    n, n_groups, k = 60, 6, 2
    cv = skfolio.CombinatorialPurgedCV(n_folds=n_groups, n_test_folds=k, purged_size=0, embargo_size=embargo)
    ours = combinatorial_purged_splits(np.arange(n), np.arange(n), n_groups, k, embargo=embargo)
    theirs = list(cv.split(np.zeros((n, 1))))
    assert len(ours) == len(theirs) == cv.n_splits
    for mine, (train, tests) in zip(ours, theirs, strict=True):
        assert mine.train.tolist() == train.tolist()
        assert mine.test.tolist() == np.concatenate(tests).tolist()
    assert n_backtest_paths(n_groups, k) == cv.n_test_paths
    assert np.array_equal(backtest_paths(n_groups, k).T, cv.recombined_paths)
