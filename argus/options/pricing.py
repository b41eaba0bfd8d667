"""Stand-alone European option pricing: Black–Scholes(–Merton) or Heston (analytic or Monte Carlo).

`price_option(model, ...)` returns {"price", "stderr", "method", "device"}:
- model "bs": closed-form Black–Scholes with volatility `vol` (stderr None, method "analytic").
- model "heston", method "analytic": Lewis's single-integral price (argus.analytics.heston.heston_price).
- model "heston", method "mc": Andersen QE Monte Carlo (argus.kernels.heston_mc.mc_european) with
  `paths`, `steps`, `seed`; stderr is the standard error of the discounted payoff mean.

Devices (`resolve_device`): "cpu" always works; "gpu" runs the Monte Carlo on a CUDA device through CuPy
(argus.options.gpu: the same kernel source and random numbers as the CPU) and is refused with a ValueError
naming the reason (cupy not installed, no CUDA device) when there is none; "auto" is "gpu" when
argus.options.gpu.available(), else "cpu".  Only the Monte Carlo runs on the GPU: analytic prices are
computed on the CPU and report "cpu" (the "device" of a result is where it was computed).
"""

from __future__ import annotations

import math

__all__ = ["resolve_device", "mc_functions", "price_option"]

DEVICES = ("auto", "cpu", "gpu")


def resolve_device(device: str) -> str:
    """The device the Monte Carlo runs on: 'cpu', or 'gpu' when asked for ('gpu') or present ('auto').

    Raises ValueError for an unknown name, and for 'gpu' without a usable CUDA device (with the reason)."""
    device = str(device).lower()
    if device not in DEVICES:
        raise ValueError(f"device={device!r}: must be one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    from argus.options import gpu

    if device == "auto":
        return "gpu" if gpu.available() else "cpu"
    reason = gpu.unavailable_reason()
    if reason is not None:
        raise ValueError(f"device gpu: unavailable, {reason}; use --device cpu or auto")
    return "gpu"


def mc_functions(device: str):
    """(mc_european, mc_spread) of a resolved device ('cpu' or 'gpu'): same signatures and results."""
    if device == "gpu":
        from argus.options import gpu

        return gpu.mc_european, gpu.mc_spread
    from argus.kernels.heston_mc import mc_european, mc_spread

    return mc_european, mc_spread


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
        return {"price": p, "stderr": None, "method": "analytic", "device": "cpu"}
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
        return {"price": p, "stderr": None, "method": "analytic", "device": "cpu"}
    mc_european = mc_functions(dev)[0]

    n_steps = max(16, math.ceil(50 * years)) if steps is None else int(steps)
    if n_steps < 1:
        raise ValueError(f"steps={steps!r}: must be >= 1")
    prices, ses = mc_european(spot, rate, div, params.v0, params.kappa, params.theta, params.sigma, params.rho,
                              years, [strike], ["C" if is_call else "P"], int(paths), n_steps, int(seed))
    return {"price": float(prices[0]), "stderr": float(ses[0]), "method": "mc", "device": dev}
