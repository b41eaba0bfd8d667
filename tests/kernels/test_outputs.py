"""The block-chained output digest is canonical (any drain sizes) and restorable from its state."""

from __future__ import annotations

import hashlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from argus.kernels.bars import BAR_FIELDS, bar_layout_info
from argus.kernels.outputs import ROWS_PER_BLOCK, BlockDigest, OutputBuffer


def rows(n: int, itemsize: int = 24) -> bytes:
    return np.arange(n * itemsize // 8, dtype=np.int64).tobytes()


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=3 * ROWS_PER_BLOCK), max_size=8))
def test_digest_does_not_depend_on_how_rows_are_drained(cuts: list[int]) -> None:
    total = 3 * ROWS_PER_BLOCK + 17
    data = rows(total)
    whole = BlockDigest(24)
    whole.update(data)
    pieces = BlockDigest(24)
    bounds = sorted({0, total, *[min(c, total) for c in cuts]})
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        pieces.update(data[a * 24:b * 24])
    assert pieces.digest() == whole.digest()


def test_digest_restored_from_its_state_continues_identically() -> None:
    data = rows(2 * ROWS_PER_BLOCK + 5)
    full = BlockDigest(24)
    full.update(data)
    half = BlockDigest(24)
    half.update(data[: 24 * (ROWS_PER_BLOCK + 3)])
    again = BlockDigest.from_state(24, half.state())
    again.update(data[24 * (ROWS_PER_BLOCK + 3):])
    assert again.digest() == full.digest()


def test_digest_of_one_block_is_the_chained_blake2b() -> None:
    data = rows(ROWS_PER_BLOCK)
    d = BlockDigest(24)
    d.update(data)
    chain = hashlib.blake2b(b"\0" * 32 + data, digest_size=32).digest()
    assert d.digest() == hashlib.blake2b(chain, digest_size=32).digest()


def test_empty_buffer_drains_to_an_empty_array_of_its_dtype() -> None:
    buf = OutputBuffer(np.dtype(list(BAR_FIELDS)))
    out = buf.drain()
    assert out.dtype == np.dtype(list(BAR_FIELDS)) and len(out) == 0 and buf.rows_emitted == 0


def test_bar_struct_matches_bar_fields() -> None:
    size, offsets = bar_layout_info()
    dtype = np.dtype(list(BAR_FIELDS))
    assert size == dtype.itemsize
    assert offsets == {name: dtype.fields[name][1] for name in dtype.names}
