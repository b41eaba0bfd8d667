"""Gaussian HMM: the research fit (recovery, determinism, variance order, canonical JSON) and the online
forward filter (parity with numpy, parameter sets scheduled by offset, state per (instrument, spec),
snapshots and validation)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from argus.analytics.hmm import HmmParams, fit_gaussian_hmm, from_json, sort_by_variance, to_json
from argus.kernels.bars import BAR_FIELDS
from argus.kernels.hmm import HMM_FIELDS, MAX_SETS, HmmReducer, config_hash, hmm_layout_info
from argus.kernels.reducer import SnapshotError

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
MINUTE = 60_000_000_000

TWO = HmmParams(np.array([0.6, 0.4]), np.array([[0.97, 0.03], [0.05, 0.95]]),
                np.array([0.0005, -0.001]), np.array([0.005 ** 2, 0.02 ** 2]))
THREE = HmmParams(np.array([0.5, 0.3, 0.2]),
                  np.array([[0.95, 0.03, 0.02], [0.04, 0.93, 0.03], [0.03, 0.05, 0.92]]),
                  np.array([0.001, 0.0, -0.002]), np.array([0.004 ** 2, 0.01 ** 2, 0.03 ** 2]))


# -- helpers -------------------------------------------------------------------------------------

def simulate(params: HmmParams, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = len(params.means)
    states = np.empty(n, dtype=int)
    states[0] = rng.choice(k, p=params.startprob)
    u = rng.random(n)
    cum = np.cumsum(params.transmat, axis=1)
    for t in range(1, n):
        states[t] = min(int(np.searchsorted(cum[states[t - 1]], u[t], side="right")), k - 1)
    return rng.normal(params.means[states], np.sqrt(params.variances[states])), states


def forward_filter(params: HmmParams, x: np.ndarray) -> np.ndarray:
    """An independent textbook forward filter: normalised alpha_t, (T, k)."""
    out = np.empty((len(x), len(params.means)))
    alpha = None
    for t, r in enumerate(x):
        dens = np.exp(-0.5 * (r - params.means) ** 2 / params.variances) / np.sqrt(2 * np.pi * params.variances)
        pred = params.startprob if alpha is None else alpha @ params.transmat
        alpha = pred * dens
        alpha = alpha / alpha.sum()
        out[t] = alpha
    return out


def make_bars(closes, instrument: int = 0, spec: int = 0, first_offset: int = 0) -> np.ndarray:
    n = len(closes)
    bars = np.zeros(n, dtype=BAR_DTYPE)
    bars["offset"] = np.arange(n) + first_offset
    bars["instrument_id"] = instrument
    bars["spec"] = spec
    bars["ts_start"] = np.arange(n) * MINUTE
    bars["ts_end"] = bars["ts_start"] + MINUTE
    bars["close"] = closes
    bars["open"] = bars["high"] = bars["low"] = bars["vwap"] = closes
    bars["volume"] = 1.0
    bars["trade_count"] = 1
    return bars


def closes_of(rets, start: float = 100.0) -> np.ndarray:
    return start * np.exp(np.concatenate([[0.0], np.cumsum(rets)]))


def new_reducer(n_bar_specs: int = 1, sets=()) -> HmmReducer:
    r = HmmReducer("hmm", config_hash(n_bar_specs), n_bar_specs)
    for offset, params in sets:
        r.set_params(offset, to_json(params))
    return r


def run(reducer: HmmReducer, bars: np.ndarray) -> np.ndarray:
    reducer.feed_bars(bars)
    return reducer.outputs()[0][1].drain()


def assert_probs(rows: np.ndarray, expected: np.ndarray) -> None:
    k = expected.shape[1]
    np.testing.assert_allclose(rows["prob"][:, :k], expected, rtol=0, atol=1e-12)
    assert np.all(np.isnan(rows["prob"][:, k:]))
    assert np.all(rows["n_states"] == k)
    np.testing.assert_array_equal(rows["state"], np.argmax(rows["prob"][:, :k], axis=1))


# -- layout --------------------------------------------------------------------------------------

def test_row_layout_matches_hmm_fields() -> None:
    size, offsets = hmm_layout_info()
    dtype = np.dtype(list(HMM_FIELDS))
    assert dtype.itemsize == size == 112
    assert {name: dtype.fields[name][1] for name in dtype.names} == offsets
    name, buf = new_reducer().outputs()[0]
    assert name == "hmm" and buf.dtype == dtype


# -- the fit -------------------------------------------------------------------------------------

@pytest.mark.parametrize("truth, n, seed", [(TWO, 4000, 11), (THREE, 6000, 12)], ids=["2-state", "3-state"])
def test_fit_recovers_a_known_model(truth: HmmParams, n: int, seed: int) -> None:
    x, states = simulate(truth, n, seed)
    fit = fit_gaussian_hmm(x, n_states=len(truth.means))
    assert np.all(np.diff(fit.variances) > 0)  # ordered by variance, like the truth
    for j in range(len(truth.means)):
        count = np.sum(states == j)
        se = np.sqrt(truth.variances[j] / count)
        assert abs(fit.means[j] - truth.means[j]) < 4 * se
        assert abs(fit.variances[j] / truth.variances[j] - 1) < 0.2
    np.testing.assert_allclose(np.diag(fit.transmat), np.diag(truth.transmat), atol=0.05)


def test_fit_is_deterministic_and_labels_are_stable() -> None:
    x, _ = simulate(TWO, 2000, 3)
    a, b = to_json(fit_gaussian_hmm(x)), to_json(fit_gaussian_hmm(x.copy()))
    assert a == b
    assert to_json(fit_gaussian_hmm(x, seed=1)) == to_json(fit_gaussian_hmm(x, seed=1))
    # a relabelled model sorts back to the same labels
    perm = np.array([1, 0])
    shuffled = HmmParams(TWO.startprob[perm], TWO.transmat[np.ix_(perm, perm)], TWO.means[perm],
                         TWO.variances[perm])
    assert to_json(sort_by_variance(shuffled)) == to_json(sort_by_variance(TWO)) == to_json(TWO)


def test_fit_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=re.escape("field 'n_states' = 9 must be an integer in [2, 8]")):
        fit_gaussian_hmm(np.random.default_rng(0).normal(size=500), n_states=9)
    with pytest.raises(ValueError, match="field 'x'"):
        fit_gaussian_hmm(np.zeros(100))


# -- JSON ----------------------------------------------------------------------------------------

def test_json_round_trip_is_exact_and_canonical() -> None:
    x, _ = simulate(THREE, 1500, 5)
    fit = fit_gaussian_hmm(x, n_states=3, n_iter=30)
    text = to_json(fit)
    back = from_json(text)
    for name in ("startprob", "transmat", "means", "variances"):
        assert getattr(back, name).tobytes() == getattr(fit, name).tobytes()
    assert to_json(back) == text
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert json.loads(text)["n_states"] == 3


def _doc(**changes) -> str:
    doc = json.loads(to_json(TWO))
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize("text, message", [
    (_doc(n_states=1), "field 'n_states' = 1 must be an integer in [2, 8]"),
    (_doc(n_states=3), "field 'means' = [0.0005, -0.001] must be of length n_states = 3"),
    (_doc(startprob=[0.5, 0.6]), "field 'startprob' = [0.5, 0.6] must be non-negative and sum to 1"),
    (_doc(transmat=[[0.9, 0.2], [0.5, 0.5]]), "field 'transmat[0]' = [0.9, 0.2] must be a non-negative row"),
    (_doc(transmat=[[1.0, 0.0]]), "field 'transmat' = [[1.0, 0.0]] must be of shape (2, 2)"),
    (_doc(variances=[1e-4, 0.0]), "field 'variances' = [0.0001, 0.0] must be > 0"),
    (_doc(means=[0.0, "x"]), "field 'means' = [0.0, 'x'] must be a list of numbers"),
    (_doc(transmat=[0.5, 0.5]), "field 'transmat' = [0.5, 0.5] must be a list of lists of numbers"),
    (_doc(startprob=1.0), "field 'startprob' = 1.0 must be a list of numbers"),
    (_doc(extra=1), "field 'keys'"),
    ("[1, 2]", "field 'json' = [1, 2] must be a JSON object"),
    ("{", "field 'json' = '{' must be a JSON object"),
])
def test_from_json_refuses_naming_field_value_and_rule(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        from_json(text)


# -- the filter ----------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [TWO, THREE], ids=["2-state", "3-state"])
def test_filter_matches_a_numpy_forward_filter(params: HmmParams) -> None:
    x, _ = simulate(params, 1500, 21)
    closes = closes_of(x)
    rows = run(new_reducer(sets=[(0, params)]), make_bars(closes))
    assert len(rows) == len(x)
    assert rows["offset"].tolist() == list(range(1, len(closes)))
    ret = np.log(closes[1:] / closes[:-1])
    np.testing.assert_allclose(rows["log_return"], ret, rtol=1e-14, atol=0)  # libm vs numpy log: an ulp
    assert_probs(rows, forward_filter(params, ret))
    assert np.all(rows["params_offset"] == 0)
    assert rows["_pad"].tobytes() == b"\0" * 6 * len(rows)


def test_no_rows_before_a_parameter_set_is_active() -> None:
    x, _ = simulate(TWO, 300, 2)
    closes = closes_of(x)
    bars = make_bars(closes)
    assert len(run(new_reducer(), bars)) == 0
    rows = run(new_reducer(sets=[(100, TWO)]), bars)
    # the close before offset 100 is remembered: the first row is bar 100, with the return into it
    assert rows["offset"].tolist() == list(range(100, len(closes)))
    assert_probs(rows, forward_filter(TWO, np.log(closes[100:] / closes[99:-1])))


def test_a_set_scheduled_at_k_affects_only_bars_from_k_and_restarts_filters() -> None:
    x, _ = simulate(TWO, 600, 4)
    closes = closes_of(x)
    ret = np.log(closes[1:] / closes[:-1])
    bars = make_bars(closes)
    k = 250
    base = run(new_reducer(sets=[(0, TWO)]), bars)
    both = run(new_reducer(sets=[(0, TWO), (k, THREE)]), bars)
    before = both["offset"] < k
    assert both[before].tobytes() == base[base["offset"] < k].tobytes()
    after = both[~before]
    assert after["offset"][0] == k and np.all(after["params_offset"] == k)
    assert_probs(after, forward_filter(THREE, ret[k - 1:]))  # restarted from startprob at bar k
    assert np.all(both[before]["params_offset"] == 0)


def test_set_params_validation() -> None:
    r = new_reducer(sets=[(10, TWO)])
    with pytest.raises(ValueError, match="must be > the previous set's offset 10"):
        r.set_params(10, to_json(THREE))
    with pytest.raises(ValueError, match="field 'variances'"):
        r.set_params(20, _doc(variances=[1.0, -1.0]))
    run(r, make_bars(closes_of(np.full(30, 0.001))))
    with pytest.raises(ValueError, match="must be >= next_offset = 31"):
        r.set_params(30, to_json(THREE))
    r.set_params(31, to_json(THREE))
    full = new_reducer(sets=[(i, TWO) for i in range(MAX_SETS)])
    with pytest.raises(ValueError, match=f"at most {MAX_SETS} parameter sets"):
        full.set_params(1000, to_json(TWO))
    assert full.params_sets() == [(i, to_json(TWO)) for i in range(MAX_SETS)]


def test_two_instruments_and_two_specs_are_kept_apart() -> None:
    n = 400
    series = {(iid, spec): closes_of(simulate(TWO, n - 1, 30 + 2 * iid + spec)[0], start=10.0 + 40 * iid + spec)
              for iid in (0, 3) for spec in (0, 1)}
    parts = [make_bars(c, instrument=iid, spec=spec) for (iid, spec), c in series.items()]
    bars = np.empty(n * len(parts), dtype=BAR_DTYPE)
    for j, part in enumerate(parts):
        bars[j::len(parts)] = part
    bars["offset"] = np.arange(len(bars)) * 2 + 1
    rows = run(new_reducer(n_bar_specs=2, sets=[(0, TWO)]), bars)
    for (iid, spec), closes in series.items():
        mine = rows[(rows["instrument_id"] == iid) & (rows["spec"] == spec)]
        assert len(mine) == n - 1
        assert_probs(mine, forward_filter(TWO, np.log(closes[1:] / closes[:-1])))


def test_unusable_closes_give_no_rows_and_leave_the_state() -> None:
    x, _ = simulate(TWO, 200, 8)
    closes = closes_of(x)
    clean = run(new_reducer(sets=[(0, TWO)]), make_bars(closes))
    dirty_closes = np.insert(closes, [50, 120, 120], [np.nan, 0.0, -3.0])
    dirty = run(new_reducer(sets=[(0, TWO)]), make_bars(dirty_closes))
    for name in ("prob", "state", "log_return"):
        assert dirty[name].tobytes() == clean[name].tobytes()


# -- snapshots -----------------------------------------------------------------------------------

SETS = [(40, TWO), (700, THREE)]


@pytest.mark.parametrize("k", [0, 1, 2, 41, 333, 699, 700, 701, 1199, 1200])
def test_snapshot_restore_continue_gives_identical_rows_and_digest(k: int) -> None:
    b0 = make_bars(closes_of(simulate(TWO, 599, 50)[0]), instrument=0)
    b1 = make_bars(closes_of(simulate(THREE, 599, 51)[0], start=2.0), instrument=2, spec=1)
    bars = np.empty(1200, dtype=BAR_DTYPE)
    bars[0::2], bars[1::2] = b0, b1
    bars["offset"] = np.arange(1200)

    whole = new_reducer(2, SETS)
    expected = run(whole, bars)
    assert set(expected["params_offset"].tolist()) == {40, 700}

    first = new_reducer(2, SETS)
    head = run(first, bars[:k])
    snap = first.snapshot()
    second = HmmReducer("hmm", config_hash(2), 2)  # the sets come from the snapshot
    second.restore(snap)
    assert second.params_sets() == first.params_sets()
    assert second.state_digest() == first.state_digest()
    tail = run(second, bars[k:])
    assert np.concatenate([head, tail]).tobytes() == expected.tobytes()
    assert second.state_digest() == whole.state_digest()
    assert second.outputs()[0][1].digest() == whole.outputs()[0][1].digest()
    assert (second.next_offset, second.events, second.now) == (whole.next_offset, whole.events, whole.now)


def test_snapshot_refusals() -> None:
    r = new_reducer(sets=[(0, TWO)])
    run(r, make_bars(closes_of(np.full(9, 0.001)), instrument=1))
    with pytest.raises(SnapshotError, match="config_hash"):
        new_reducer(n_bar_specs=2).restore(r.snapshot())
    with pytest.raises(SnapshotError, match="layout"):
        HmmReducer("hmm", config_hash(1), 2).restore(r.snapshot())
    layout, sets, dbytes, sbytes = r.state_parts()
    with pytest.raises(SnapshotError, match="4"):
        r.load_state_parts([layout, sets, dbytes])
    with pytest.raises(SnapshotError, match="must be"):
        r.load_state_parts([layout, sets, dbytes[:-8], sbytes])
    with pytest.raises(SnapshotError, match="parameter sets are invalid"):
        r.load_state_parts([layout, b"[[0, \"{}\"]]", dbytes, sbytes])
    with pytest.raises(SnapshotError, match="names parameter set"):
        r.load_state_parts([layout, b"[]", dbytes, sbytes])
    r.load_state_parts([layout, sets, dbytes, sbytes])
    assert r.state_parts() == [layout, sets, dbytes, sbytes]


# -- validation and bookkeeping ------------------------------------------------------------------------

def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("field 'n_bar_specs' = 0 must be an integer >= 1")):
        HmmReducer("hmm", b"\0" * 32, 0)
    r = new_reducer(n_bar_specs=2)
    with pytest.raises(ValueError, match="must be the BAR_FIELDS dtype"):
        r.feed_bars(np.zeros(3, dtype=[("close", "<f8")]))
    bars = make_bars([1.0, 1.1, 1.2])
    bars["spec"][2] = 2
    with pytest.raises(ValueError, match="bar spec = 2 must be < n_bar_specs = 2"):
        r.feed_bars(bars)
    with pytest.raises(TypeError, match="fed closed bars"):
        new_reducer().apply_chunk(b"\0" * 64, 0)
    with pytest.raises(TypeError, match="fed closed bars"):
        new_reducer().apply_record(b"\0" * 32, 0)
