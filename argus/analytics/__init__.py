"""Small, pure numerical analytics (no Argus imports): option pricing helpers."""

from argus.analytics.black_scholes import Greeks, d1_d2, greeks, implied_vol, price

__all__ = ["Greeks", "d1_d2", "greeks", "implied_vol", "price"]
