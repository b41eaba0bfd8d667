"""Errors raised across Argus. Each message names the field, the value and the rule it broke."""

from __future__ import annotations


class ArgusError(Exception):
    """Base class of every error Argus raises on purpose."""


class EventValidationError(ArgusError, ValueError):
    """A record broke a layout or value rule; nothing of its batch was written."""

    def __init__(self, index: int, event_type: str, field: str, value: object, rule: str, detail: str = ""):
        self.index = index
        self.event_type = event_type
        self.field = field
        self.value = value
        self.rule = rule
        where = f"event {index} ({event_type})" if index >= 0 else f"{event_type} event"
        super().__init__(f"{where}: field '{field}' = {value!r} must be {rule}{detail}")


class WrongExpectedHeadError(ArgusError):
    """An append named an expected head that is not the log's head (optimistic concurrency)."""

    def __init__(self, expected: int, actual: int):
        self.expected = expected
        self.actual = actual
        super().__init__(f"expected_head = {expected} but the log's head is {actual}: nothing was written")


class ProducerSequenceError(ArgusError):
    """An idempotent producer sent a sequence number older than its last acknowledged one."""

    def __init__(self, producer_id: str, sequence: int, last: int):
        self.producer_id = producer_id
        self.sequence = sequence
        self.last = last
        super().__init__(
            f"producer '{producer_id}': sequence = {sequence} must be > {last} (its last acknowledged sequence)"
        )


class CorruptLogError(ArgusError):
    """A chunk failed its checksum or its place in the hash chain; its records are not returned."""


class LogLockedError(ArgusError):
    """Another process already holds the log's single-writer lock."""


class ForkedEnvironmentError(ArgusError):
    """An LMDB environment was used in a process forked after it was opened."""

