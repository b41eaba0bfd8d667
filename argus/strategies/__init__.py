"""Strategies: the API (argus.strategies.base), the registry and the strategies Argus ships."""
