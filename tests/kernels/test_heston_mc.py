"""Heston QE Monte Carlo kernel (kernels/heston_qe_kernel.h via argus.kernels.heston_mc): Philox known
answers, the normal inverse, determinism and keying, the martingale, prices against the analytic references
of REFERENCES.md, and the spread reductions against numpy on the same simulated paths."""

import math

import numpy as np
import pytest

hm = pytest.importorskip("argus.kernels.heston_mc")

FO = dict(S0=100.0, r=0.0, q=0.0, v0=0.0175, kappa=1.5768, theta=0.0398, sigma=0.5751, rho=-0.5711, T=1.0)
FO_CALL = 5.785155434376
LEWIS = dict(S0=100.0, r=0.01, q=0.02, v0=0.04, kappa=4.0, theta=0.25, sigma=1.0, rho=-0.5, T=1.0)
LEWIS_CALL_100 = 16.070154917028834
LEWIS_PUT_100 = 17.055270961270109
LEWIS_CALL_120 = 9.024913483457836
BIAS = 0.01  # allowance for QE discretisation bias at dt = 1/64 (on prices around 5-20)


def _args(p):
    return (p["S0"], p["r"], p["q"], p["v0"], p["kappa"], p["theta"], p["sigma"], p["rho"], p["T"])


@pytest.mark.parametrize(
    "counter,key,expected",
    [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(counter, key, expected):
    assert hm.philox4x32_10(counter, key) == expected


def test_norm_inv_matches_scipy():
    special = pytest.importorskip("scipy.special")
    ps = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 2001), [2.0**-33, 1 - 2.0**-33, 0.02425, 0.075, 0.925, 1e-300]])
    got = np.array([hm.norm_inv(p) for p in ps])
    want = special.ndtri(ps)
    assert np.all(np.abs(got - want) <= 1e-14 * np.maximum(1.0, np.abs(want)))


def test_word_normal_equals_the_general_inverse_and_scipy():
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(3)
    words = np.concatenate([rng.integers(0, 2**32, 20_000), [0, 1, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]])
    u = (words + 0.5) * 2.0**-32
    got = np.array([hm.norm_inv_word(int(w)) for w in words])
    assert np.array_equal(got, np.array([hm.norm_inv(p) for p in u]))  # branch-free form: same bits
    want = special.ndtri(u)
    assert np.all(np.abs(got - want) <= 2e-15 * np.maximum(1.0, np.abs(want)))


def test_kernel_log_and_exp_within_one_ulp():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(1e-12, 3.0, 5000), np.exp(rng.uniform(-700, 700, 5000)), [2.0**-33, 1.0, 2.0]])
    lg = np.array([hm.kernel_log(float(v)) for v in x])
    assert np.all(np.abs(lg - np.log(x)) <= np.spacing(np.abs(np.log(x))))
    e = rng.uniform(-700, 700, 5000)
    ex = np.array([hm.kernel_exp(float(v)) for v in e])
    assert np.all(np.abs(ex - np.exp(e)) <= np.spacing(np.exp(e)))


def test_odd_step_counts_leave_the_last_calls_second_pair_unused():
    # steps 2j and 2j + 1 share one Philox call; with an odd count the last call's words 2, 3 go unused
    for n_steps in (1, 3, 7):
        st, lo, hi = hm.mc_terminal(*_args(LEWIS), 2000, n_steps, 5)
        fwd = LEWIS["S0"] * math.exp((LEWIS["r"] - LEWIS["q"]) * LEWIS["T"])
        assert np.all(np.isfinite(st)) and abs(st.mean() - fwd) <= 4 * st.std(ddof=1) / math.sqrt(len(st))


@pytest.mark.parametrize("sigma,rho", [(1.0, -0.9), (1.5, -0.95)])
def test_strongly_negative_rho_high_vol_of_vol_against_the_analytic_price(sigma, rho):
    heston = pytest.importorskip("argus.analytics.heston")
    p = dict(LEWIS, sigma=sigma, rho=rho)
    K = np.array([80.0, 100.0, 120.0])
    ref = heston.heston_price(p["S0"], K, p["T"], p["r"], p["q"],
                              heston.HestonParams(p["v0"], p["kappa"], p["theta"], sigma, rho), "call")
    px, se = hm.mc_european(*_args(p), K, ["C"] * 3, 200_000, 64, 2)
    assert np.all(np.abs(px - ref) <= 3 * se + BIAS), (px - ref) / se


def test_same_seed_identical_different_seed_differs():
    a = hm.mc_european(*_args(LEWIS), [90.0, 110.0], ["C", "P"], 5000, 16, 42)
    b = hm.mc_european(*_args(LEWIS), [90.0, 110.0], ["C", "P"], 5000, 16, 42)
    c = hm.mc_european(*_args(LEWIS), [90.0, 110.0], ["C", "P"], 5000, 16, 43)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.any(a[0] == c[0])
    s1 = hm.mc_spread(*_args(LEWIS), 95.0, 90.0, "P", 1.5, 5000, 16, 7)
    s2 = hm.mc_spread(*_args(LEWIS), 95.0, 90.0, "P", 1.5, 5000, 16, 7)
    assert s1 == s2


def test_keying_path_is_independent_of_path_count():
    # path i is keyed by (seed, i, step) only: a prefix of a bigger run is the same paths
    small = hm.mc_terminal(*_args(LEWIS), 100, 8, 2**40 + 5)
    big = hm.mc_terminal(*_args(LEWIS), 5000, 8, 2**40 + 5)
    for s, b in zip(small, big, strict=True):
        assert np.array_equal(s, b[:100])
    other_hi = hm.mc_terminal(*_args(LEWIS), 100, 8, 5)  # seed differs only in the high key word
    assert not np.any(other_hi[0] == small[0])


def test_uniform_words_have_sane_moments():
    # all four words of a call drive steps (w0, w1 even, w2, w3 odd): normals with mean 0 and variance 1
    z = []
    for i in range(2000):
        for k in range(2):
            w = hm.philox4x32_10((i, 0, k, 0), (9, 0))
            z.extend(hm.norm_inv_word(x) for x in w)
    z = np.array(z)
    assert abs(z.mean()) < 4 / math.sqrt(len(z))
    assert abs(z.var() - 1) < 0.05


@pytest.mark.parametrize("params,seed", [(FO, 11), (LEWIS, 11)])
def test_martingale(params, seed):
    st, lo, hi = hm.mc_terminal(*_args(params), 100_000, 64, seed)
    fwd = params["S0"] * math.exp((params["r"] - params["q"]) * params["T"])
    se = st.std(ddof=1) / math.sqrt(len(st))
    assert abs(st.mean() - fwd) <= 3 * se
    assert np.all(lo <= st) and np.all(st <= hi) and np.all(lo <= params["S0"]) and np.all(hi >= params["S0"])


def test_fang_oosterlee_call():
    px, se = hm.mc_european(*_args(FO), [100.0], ["C"], 200_000, 64, 1)
    assert abs(px[0] - FO_CALL) <= 3 * se[0] + BIAS


def test_lewis_table_call_and_put():
    K = [100.0, 100.0, 120.0]
    px, se = hm.mc_european(*_args(LEWIS), K, ["C", "P", "call"], 200_000, 64, 1)
    ref = np.array([LEWIS_CALL_100, LEWIS_PUT_100, LEWIS_CALL_120])
    assert np.all(np.abs(px - ref) <= 3 * se + BIAS), (px - ref) / se


def test_european_matches_numpy_on_same_paths():
    K = np.array([80.0, 100.0, 125.0])
    px, se = hm.mc_european(*_args(LEWIS), K, ["C", "P", "P"], 20_000, 16, 3)
    st, _, _ = hm.mc_terminal(*_args(LEWIS), 20_000, 16, 3)
    disc = math.exp(-LEWIS["r"] * LEWIS["T"])
    pay = np.stack([np.maximum(st - K[0], 0), np.maximum(K[1] - st, 0), np.maximum(K[2] - st, 0)], 1) * disc
    np.testing.assert_allclose(px, pay.mean(0), rtol=1e-10)
    np.testing.assert_allclose(se, pay.std(0, ddof=1) / math.sqrt(len(st)), rtol=1e-8)


@pytest.mark.parametrize("K1,K2,right,credit,mult", [(95.0, 90.0, "P", 1.5, 100.0), (105.0, 112.0, "C", 2.0, 1.0)])
def test_spread_matches_numpy_on_same_paths(K1, K2, right, credit, mult):
    n, steps, seed = 40_000, 32, 5
    d = hm.mc_spread(*_args(LEWIS), K1, K2, right, credit, n, steps, seed, multiplier=mult)
    st, lo, hi = hm.mc_terminal(*_args(LEWIS), n, steps, seed)
    if right == "P":
        pnl = mult * (credit - np.maximum(K1 - st, 0) + np.maximum(K2 - st, 0))
        touch = lo <= K1
        width = K1 - K2
    else:
        pnl = mult * (credit - np.maximum(st - K1, 0) + np.maximum(st - K2, 0))
        touch = hi >= K1
        width = K2 - K1
    max_loss = mult * (credit - width)
    assert d["max_loss"] == pytest.approx(max_loss) and d["max_profit"] == pytest.approx(mult * credit)
    assert d["pop"] == np.mean(pnl > 0)
    assert d["p_touch"] == np.mean(touch)
    assert d["p_max_loss"] == np.mean(pnl <= max_loss + 1e-9)
    assert d["expected_pnl"] == pytest.approx(pnl.mean(), rel=1e-10, abs=1e-10)
    assert d["expected_pnl_se"] == pytest.approx(pnl.std(ddof=1) / math.sqrt(n), rel=1e-8)
    assert d["mean_ST"] == pytest.approx(st.mean(), rel=1e-12)
    res = mult * width / 4096
    for p, k in ((0.05, "q05"), (0.5, "q50"), (0.95, "q95")):
        assert abs(d[k] - np.quantile(pnl, p, method="inverted_cdf")) <= res + 1e-9
    # sanity relations
    assert d["pop"] + np.mean(pnl <= 0) == pytest.approx(1.0)
    assert d["q05"] <= d["q50"] <= d["q95"]
    assert d["p_max_loss"] <= 1 - d["pop"]
    assert d["pop_se"] == pytest.approx(math.sqrt(d["pop"] * (1 - d["pop"]) / n))
    fwd = LEWIS["S0"] * math.exp((LEWIS["r"] - LEWIS["q"]) * LEWIS["T"])
    assert abs(d["mean_ST"] - fwd) <= 4 * d["mean_ST_se"]


def test_argument_validation():
    with pytest.raises(ValueError):
        hm.mc_european(*_args(dict(LEWIS, sigma=0.0)), [100.0], ["C"], 100, 4, 1)
    with pytest.raises(ValueError):
        hm.mc_european(*_args(LEWIS), [100.0], ["X"], 100, 4, 1)
    with pytest.raises(ValueError):
        hm.mc_european(*_args(LEWIS), [100.0, 90.0], ["C", "P", "C"], 100, 4, 1)
    with pytest.raises(ValueError):
        hm.mc_spread(*_args(LEWIS), 95.0, 95.0, "P", 1.0, 100, 4, 1)
    with pytest.raises(ValueError):
        hm.mc_european(*_args(LEWIS), [100.0], ["C"], 100, 0, 1)


def test_results_do_not_depend_on_the_number_of_threads() -> None:
    """OpenMP splits the paths into fixed chunks merged in order: one thread or several, same bytes."""
    outs = []
    for threads in (1, 2, 0):
        hm.set_threads(threads)
        prices, ses = hm.mc_european(*_args(LEWIS), [90.0, 100.0], ["C", "P"], 20_000, 16, 9)
        spread = hm.mc_spread(*_args(LEWIS), 95.0, 90.0, "P", 1.2, 20_000, 16, 9)
        outs.append((prices.tobytes(), ses.tobytes(), sorted(spread.items())))
    hm.set_threads(0)
    assert outs[0] == outs[1] == outs[2]
