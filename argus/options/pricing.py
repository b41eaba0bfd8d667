"""Stand-alone European option pricing: Black–Scholes(–Merton) or Heston (analytic or Monte Carlo).

`price_option(model, ...)` returns {"price", "stderr", "method", "device"}:
- model "bs": closed-form Black–Scholes with volatility `vol` (stderr None, method "analytic").
- model "heston", method "analytic": Lewis's single-integral price (argus.analytics.heston.heston_price).
- model "heston", method "mc": Andersen QE Monte Carlo (argus.kernels.heston_mc.mc_european) with
  `paths`, `steps`, `seed`; stderr is the standard error of the discounted payoff mean.

Devices: "cpu" always works; "gpu" raises a clear error (there is no GPU kernel yet) — with cupy
importable it still refuses with "no GPU path yet"; "auto" means cpu. The device used is reported.
"""

from __future__ import annotations

import math

__all__ = ["resolve_device", "price_option"]

DEVICES = ("auto", "cpu", "gpu")


def resolve_device(device: str) -> str:
    """The device a computation runs on: 'cpu' for 'auto'/'cpu'; 'gpu' is refused (no GPU path yet)."""
    device = str(device).lower()
    if device not in DEVICES:
        raise ValueError(f"device={device!r}: must be one of {', '.join(DEVICES)}")
    if device == "gpu":
        try:
            import cupy  # noqa: F401
        except ImportError:
            raise ValueError("device gpu: no GPU path yet (cupy is not importable); use --device cpu") from None
        raise ValueError("device gpu: no GPU path yet (no GPU Heston kernel); use --device cpu")
    return "cpu"


def _is_call(right: str) -> bool:
    r = str(right).strip().lower()
    if r in ("c", "call"):
        return True
    if r in ("p", "put"):
        return False
    raise ValueError(f"right={right!r}: must be 'call' or 'put'")


def price_option(model: str, *, spot: float, strike: float, years: float, rate: float = 0.0, div: float = 0.0,
                 right: str = "call", vol: float | None = None, v0: float | None = None,
                 kappa: float | None = None, theta: float | None = None, sigma: float | None = None,
                 rho: float | None = None, method: str = "analytic", paths: int = 200_000,
                 steps: int | None = None, seed: int = 0, device: str = "auto") -> dict:
    """Price one European option; see the module docstring. `steps` defaults to max(16, ceil(50 T))."""
    dev = resolve_device(device)
    is_call = _is_call(right)
    for name, value in (("spot", spot), ("strike", strike), ("years", years)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}={value!r}: must be > 0 and finite")
    model = str(model).lower()
    method = str(method).lower()
    if method not in ("analytic", "mc"):
        raise ValueError(f"method={method!r}: must be 'analytic' or 'mc'")
    if model == "bs":
        if vol is None or not (math.isfinite(vol) and vol > 0):
            raise ValueError("model bs needs --vol > 0")
        if method != "analytic":
            raise ValueError("model bs supports only --method analytic")
        from argus.analytics.black_scholes import price as bs_price

        p = float(bs_price(spot, strike, years, vol, rate, div, is_call))
        return {"price": p, "stderr": None, "method": "analytic", "device": dev}
    if model != "heston":
        raise ValueError(f"model={model!r}: must be 'bs' or 'heston'")
    missing = [n for n, v in (("v0", v0), ("kappa", kappa), ("theta", theta), ("sigma", sigma), ("rho", rho))
               if v is None]
    if missing:
        raise ValueError(f"model heston needs {', '.join('--' + m for m in missing)}")
    from argus.analytics.heston import HestonParams

    params = HestonParams(v0, kappa, theta, sigma, rho)
    if method == "analytic":
        from argus.analytics.heston import heston_price

        p = float(heston_price(spot, strike, years, rate, div, params, "call" if is_call else "put"))
        return {"price": p, "stderr": None, "method": "analytic", "device": dev}
    from argus.kernels.heston_mc import mc_european

    n_steps = max(16, math.ceil(50 * years)) if steps is None else int(steps)
    if n_steps < 1:
        raise ValueError(f"steps={steps!r}: must be >= 1")
    prices, ses = mc_european(spot, rate, div, params.v0, params.kappa, params.theta, params.sigma, params.rho,
                              years, [strike], ["C" if is_call else "P"], int(paths), n_steps, int(seed))
    return {"price": float(prices[0]), "stderr": float(ses[0]), "method": "mc", "device": dev}
