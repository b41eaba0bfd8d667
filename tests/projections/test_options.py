"""The options projection in replay (argus.projections.options): PoP and IV-anomaly records from the
OptionChainSnapshot events, deterministic in every replay mode, from any offset, in the store, the
Parquet export and the stream, and equal to what `argus.options` computes on the same chain."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import xxhash
from scipy.integrate import IntegrationWarning, quad
from scipy.stats import norm

from argus.analytics.heston import HestonParams, heston_cf
from argus.analytics.spreads import SpreadFilter, credit_spreads
from argus.analytics.surface import surface_from_chain
from argus.events.types import OptionRight
from argus.log import EventLog
from argus.options.pop import _ny_date, latest_chain, spread_pop
from argus.projections.config import ConfigError, load_config
from argus.projections.engine import ProjectionEngine
from argus.projections.export import export_parquet
from argus.projections.options import OPTION_ANOMALY_DTYPE, OPTION_POP_DTYPE, POP_OK
from argus.projections.store import DerivedStore
from tests.golden.build import OPTIONS_CONFIG, OPTIONS_DIGESTS, build_options_log

YEAR_NS = 365 * 86_400 * 1_000_000_000


@pytest.fixture(scope="module")
def log_path(tmp_path_factory) -> Path:
    return build_options_log(tmp_path_factory.mktemp("options") / "log")


@pytest.fixture(scope="module")
def config():
    return load_config(OPTIONS_CONFIG)


@pytest.fixture(scope="module")
def full(log_path: Path, config, tmp_path_factory):
    """A full chunk-mode replay with a derived store: result, store directory, every stored row."""
    data = tmp_path_factory.mktemp("derived")
    with EventLog.open(log_path, readonly=True) as log:
        engine = ProjectionEngine(log, config)
        engine.store = DerivedStore.for_config(data, config.config_hash, engine.projections.output_names())
        result = engine.replay()
        dtypes = engine.projections.dtypes()
        rows = {name: engine.store.rows(name, dt) for name, dt in dtypes.items()}
        items = list(engine.store.items())
        engine.store.close()
    return result, data, rows, items, dtypes


def _replay(log_path: Path, config, data: Path | None = None, **kwargs):
    with EventLog.open(log_path, readonly=True) as log:
        engine = ProjectionEngine(log, config)
        if data is not None:
            engine.store = DerivedStore.for_config(data, config.config_hash, engine.projections.output_names())
        try:
            return engine.replay(**kwargs)
        finally:
            if engine.store is not None:
                engine.store.close()


def test_options_golden_digests(log_path: Path, full) -> None:
    """The options golden log and its digests (python -m tests.golden.regenerate --why ... rewrites them).
    The projection's floats go through numpy's SIMD math and BLAS: the digests hold for one machine and
    library build, like the synthetic log's chain head."""
    expected = json.loads(OPTIONS_DIGESTS.read_text())
    result = full[0]
    with EventLog.open(log_path, readonly=True) as log:
        assert log.chain_head().hex() == expected["chain_head"] and log.head() == expected["events"]
    assert result.config_hash == expected["config_hash"]
    assert {k: {"outputs": v.outputs, "digest": v.digest} for k, v in result.projections.items()} == \
        expected["projections"]
    assert (result.state_digest, result.outputs_digest) == (expected["state_digest"], expected["outputs_digest"])


def test_outputs_have_the_documented_layout(full) -> None:
    rows, dtypes = full[2], full[4]
    assert dtypes["option_pop"] == OPTION_POP_DTYPE and dtypes["option_anomalies"] == OPTION_ANOMALY_DTYPE
    pop, anomalies = rows["option_pop"], rows["option_anomalies"]
    assert OPTION_POP_DTYPE.names[0] == "offset" and OPTION_ANOMALY_DTYPE.names[0] == "offset"
    # Four chains analysed (times 10:00, 12:00, 14:00, 15:30), three spreads each.
    assert len(np.unique(pop["offset"])) == 4 and len(pop) == 12
    assert np.all(pop["status"] == POP_OK)
    assert np.all(pop["seed"] == pop["offset"])
    assert np.all((pop["pop"] > 0) & (pop["pop"] < 1) & (pop["pop_se"] > 0))
    assert np.all(np.diff(pop["offset"].astype(np.int64)) >= 0)
    assert len(anomalies) > 0 and np.all(anomalies["flags"] != 0)


def test_two_replays_and_event_mode_give_the_same_digests(log_path: Path, config, full) -> None:
    result = full[0]
    again = _replay(log_path, config)
    event = _replay(log_path, config, mode="event")
    for r in (again, event):
        assert (r.state_digest, r.outputs_digest) == (result.state_digest, result.outputs_digest)
        assert {k: v.digest for k, v in r.projections.items()} == {k: v.digest for k, v in result.projections.items()}


def test_replay_from_any_offset_restores_and_matches_the_tail_of_the_full_replay(log_path: Path, config, full,
                                                                                  tmp_path: Path) -> None:
    result, data, rows, _, _ = full
    pop_offsets = np.unique(rows["option_pop"]["offset"]).tolist()
    # Before, at and just after an analysed chain, and between two snapshots of the store.
    for k in (pop_offsets[1] - 1, pop_offsets[1], pop_offsets[2] + 1, 1234):
        copy = tmp_path / f"from{k}"
        shutil.copytree(data, copy)
        r = _replay(log_path, config, copy, from_offset=k)
        assert r.restored_from is not None and r.restored_from <= k
        assert r.state_digest == result.state_digest
        for name in ("option_pop", "option_anomalies"):
            tail = rows[name][rows[name]["offset"] >= k]
            assert r.projections[name].outputs == len(tail)
            if len(tail):
                assert r.projections[name].digest == xxhash.xxh3_128(tail).hexdigest()


def test_rebuilt_store_is_byte_identical(log_path: Path, config, full, tmp_path: Path) -> None:
    _replay(log_path, config, tmp_path)
    store = DerivedStore.for_config(tmp_path, config.config_hash, list(full[4]), readonly=True)
    try:
        assert list(store.items()) == full[3]
    finally:
        store.close()


def test_stream_yields_the_same_option_rows(log_path: Path, config, full) -> None:
    rows = full[2]
    got: dict[str, list[np.ndarray]] = {"option_pop": [], "option_anomalies": []}
    with EventLog.open(log_path, readonly=True) as log:
        for chunk, emitted in ProjectionEngine(log, config).stream():
            for name in got:
                got[name].append(emitted[name])
                assert np.all((emitted[name]["offset"] >= chunk.start) & (emitted[name]["offset"] < chunk.stop))
    for name, parts in got.items():
        assert np.concatenate(parts).tobytes() == rows[name].tobytes()


def test_parquet_export_has_the_option_files(log_path: Path, config, full, tmp_path: Path) -> None:
    _, data, rows, _, dtypes = full
    store = DerivedStore.for_config(data, config.config_hash, list(dtypes), readonly=True)
    try:
        with EventLog.open(log_path, readonly=True) as log:
            written = export_parquet(store, config, dtypes, log.symbols(), tmp_path)
    finally:
        store.close()
    assert written["option_pop.parquet"] == len(rows["option_pop"])
    assert written["option_anomalies.parquet"] == len(rows["option_anomalies"])
    table = pq.read_table(tmp_path / "option_pop.parquet")
    assert set(table.column("symbol").to_pylist()) == {"SPY"}
    assert "_pad" not in table.column_names and "pop" in table.column_names
    np.testing.assert_array_equal(table.column("pop").to_numpy(), rows["option_pop"]["pop"])


def test_pop_record_equals_spread_pop_on_that_chain(log_path: Path, config, full) -> None:
    """The hand check: the snapshot the record names, its candidates by the filter, and spread_pop (the
    `argusctl options pop` computation) on that chain with the same paths give the very same numbers."""
    pop = full[2]["option_pop"]
    opts = config.options
    offset = int(pop["offset"][0])
    with EventLog.open(log_path, readonly=True) as log:
        chain = latest_chain(log, "SPY", at_offset=offset)
    assert chain.offset == offset
    cands = credit_spreads(chain.rows, chain.spot, SpreadFilter(right="put", short_delta=(0.10, 0.30), min_days=7,
                                                                max_days=60), now_ns=chain.ts_event, r=0.05)[:3]
    mine = pop[pop["offset"] == offset]
    assert len(mine) == len(cands) == 3
    for rec, c in zip(mine, cands, strict=True):
        assert (rec["short_strike"], rec["long_strike"], rec["expiry_ns"]) == \
            (c["short_strike"], c["long_strike"], c["expiry_ns"])
        ref = spread_pop(chain, _ny_date(int(c["expiry_ns"])), float(c["short_strike"]), float(c["long_strike"]),
                         "put", rate=opts["rate"], paths=opts["paths"], fit_evals=opts["fit_evals"])
        assert ref["seed"] == offset == rec["seed"]
        for field in ("pop", "pop_se", "expected_pnl", "expected_pnl_se", "p_touch", "p_max_loss", "q05", "q50",
                      "q95", "lognormal_pop", "lognormal_iv", "credit", "width", "years", "div", "fit_rmse"):
            assert rec[field] == ref[field], field
        assert [rec[k] for k in ("v0", "kappa", "theta", "sigma", "rho")] == list(ref["heston"].values())
        # By hand: the natural credit from the chain's rows and the lognormal PoP from its formula.
        puts = chain.rows[(chain.rows["expiry_ns"] == c["expiry_ns"]) & (chain.rows["right"] == int(OptionRight.PUT))]
        short = puts[puts["strike"] == rec["short_strike"]][0]
        long = puts[puts["strike"] == rec["long_strike"]][0]
        assert rec["credit"] == short["bid"] - long["ask"]
        t, iv, q = rec["years"], rec["lognormal_iv"], rec["div"]
        be = rec["short_strike"] - rec["credit"]
        d2 = (math.log(chain.spot / be) + (0.05 - q - 0.5 * iv * iv) * t) / (iv * math.sqrt(t))
        assert rec["lognormal_pop"] == pytest.approx(norm.cdf(d2), abs=1e-12)


def _heston_prob_above(spot, k, t, r, q, p: HestonParams) -> float:
    """P(S_T > k) under Heston by Gil-Pelaez inversion of the characteristic function (scipy quad)."""
    x = math.log(k / (spot * math.exp((r - q) * t)))

    def f(u: float) -> float:
        return (np.exp(-1j * u * x) * heston_cf(u, t, p) / (1j * u)).real

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        val, _ = quad(f, 1e-12, np.inf, limit=2000, epsabs=1e-10)
    return 0.5 + val / math.pi


def test_heston_pop_agrees_with_the_analytic_probability_of_the_fitted_model(full) -> None:
    """The Monte Carlo PoP of a put credit spread is P(S_T > breakeven) under the fitted parameters: an
    independent Fourier inversion of the characteristic function agrees within 4 standard errors."""
    pop = full[2]["option_pop"]
    for rec in pop[:3]:
        p = HestonParams(*(float(rec[k]) for k in ("v0", "kappa", "theta", "sigma", "rho")))
        be = float(rec["short_strike"] - rec["credit"])
        want = _heston_prob_above(float(rec["spot"]), be, float(rec["years"]), 0.05, float(rec["div"]), p)
        assert abs(rec["pop"] - want) < 4 * rec["pop_se"] + 2e-3, (rec["pop"], want)


def test_anomaly_records_are_the_flagged_quotes_of_the_surface(log_path: Path, full) -> None:
    anomalies = full[2]["option_anomalies"]
    offset = int(anomalies["offset"][0])
    with EventLog.open(log_path, readonly=True) as log:
        chain = latest_chain(log, "SPY", at_offset=offset)
    flagged = surface_from_chain(chain.rows, chain.spot, chain.ts_event, r=0.05, z_threshold=4.0).flagged()
    mine = anomalies[anomalies["offset"] == offset]
    assert len(mine) == len(flagged)
    for name in ("expiry_ns", "strike", "right", "iv_fit", "robust_z", "flags"):
        np.testing.assert_array_equal(mine[name], flagged[name])
    np.testing.assert_array_equal(mine["iv"], flagged["iv_mid"])


def _small(options: dict) -> dict:
    return {"bars": [], "indicators": "none", "positions": False, "sessions": False, "options": options}


def test_stale_snapshots_get_no_records(log_path: Path) -> None:
    """The synthetic feed receives a chain 0.2-2 ms after its ts_event: a 100us max_age makes all stale."""
    r = _replay(log_path, load_config(_small({"symbols": ["SPY"], "max_age": "100us", "times": ["10:00"]})))
    assert r.projections["option_pop"].outputs == 0 and r.projections["option_anomalies"].outputs == 0
    r = _replay(log_path, load_config(_small({"symbols": ["QQQ"]})))  # not in the log: nothing
    assert r.projections["option_pop"].outputs == 0


def test_options_section_is_hashed_only_when_present() -> None:
    plain = load_config(None)
    assert "options" not in plain.canonical()
    on = load_config({"options": True})
    assert on.canonical()["options"]["paths"] == 20_000 and on.config_hash != plain.config_hash
    assert load_config({"options": {"symbols": ["SPY", "QQQ"]}}).config_hash == \
        load_config({"options": {"symbols": "QQQ,SPY"}}).config_hash
    assert load_config({"options": {"max_age": "900s"}}).config_hash == load_config({"options": True}).config_hash


@pytest.mark.parametrize(("options", "field", "value", "rule"), [
    ({"paths": 10}, "options.paths", "10", ">= 1000"),
    ({"top": 0}, "options.top", "0", ">= 1"),
    ({"right": "straddle"}, "options.right", "'straddle'", "'put' or 'call'"),
    ({"short_delta": [0.3, 0.1]}, "options.short_delta", "[0.3, 0.1]", "low <= high"),
    ({"dte": [7]}, "options.dte", "[7]", "[low, high]"),
    ({"rate": float("nan")}, "options.rate", "nan", "finite"),
    ({"fit": "some"}, "options.fit", "'some'", "'expiry' or 'all'"),
    ({"max_age": "soon"}, "options.max_age", "'soon'", "positive count"),
    ({"times": ["25:00"]}, "options.times", "'25:00'", "HH:MM"),
    ({"z": -1}, "options.z", "-1", "> 0"),
    ({"symbols": []}, "options.symbols", "[]", "'all' or a non-empty list"),
    ({"sigma": 1}, "options", "sigma", "unknown field"),
    ("yes", "options", "'yes'", "true, false or a mapping"),
])
def test_bad_options_config_is_refused_naming_field_value_and_rule(options, field, value, rule) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"options": options})
    msg = str(err.value)
    assert field in msg and value in msg and rule in msg, msg
