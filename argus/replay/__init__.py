"""Backtests: the harness that replays the market log through a strategy and the pessimistic execution
simulator, writing an event-sourced run log (DESIGN.md §7)."""
