"""The Python client of an Argus server (DESIGN.md §8): `await ArgusClient.connect("127.0.0.1:PORT")`."""

from argus.client.client import (
    RESUMABLE_CODES,
    ArgusClient,
    Backoff,
    Batch,
    HeadInfo,
    SubscriptionGapError,
    to_frame,
)

__all__ = ["RESUMABLE_CODES", "ArgusClient", "Backoff", "Batch", "HeadInfo", "SubscriptionGapError", "to_frame"]
