"""Group commit and subscriptions: concurrent asyncio producers, the catch-up/live seam."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from argus.errors import EventValidationError
from argus.log import GroupCommitter
from tests.log.helpers import trade_ids, trades


def test_concurrent_producers_are_batched_and_each_acknowledged_with_its_offsets(log) -> None:
    log.define_instrument("SPY")

    async def main() -> tuple[list, GroupCommitter]:
        async with GroupCommitter(log) as gc:
            async def producer(p: int) -> list:
                acks = []
                for i in range(50):
                    tid = 1_000_000 * (p + 1) + i
                    res = await gc.append(trades(1, tid))
                    acks.append((res.first_offset, tid))
                return acks

            acks = await asyncio.gather(*(producer(p) for p in range(16)))
        return [a for per in acks for a in per], gc

    acks, gc = asyncio.run(main())
    offsets = sorted(off for off, _ in acks)
    assert offsets == list(range(1, 1 + 16 * 50))  # dense, no duplicate, no gap
    ids = trade_ids(log, 0)
    for off, tid in acks:  # each acknowledgement points at that producer's own record
        assert ids[off - 1] == tid
    assert gc.appends == 800 and gc.groups < 800  # producers shared transactions
    assert log.verify().ok


def test_bad_batch_fails_alone_and_the_rest_of_its_group_is_written(log) -> None:
    log.define_instrument("SPY")
    bad = trades(3, 100).copy()
    bad["size"][1] = np.nan

    async def main():
        async with GroupCommitter(log) as gc:
            return await asyncio.gather(gc.append(trades(2, 1)), gc.append(bad), gc.append(trades(2, 3)),
                                        return_exceptions=True)

    good1, err, good2 = asyncio.run(main())
    assert isinstance(err, EventValidationError) and err.field == "size"
    assert good1.count == 2 and good2.count == 2
    assert trade_ids(log).tolist() == [1, 2, 3, 4]


def test_full_queue_slows_producers_and_drops_nothing(log) -> None:
    log.define_instrument("SPY")

    async def main() -> int:
        async with GroupCommitter(log, max_queue=2) as gc:
            results = await asyncio.gather(*(gc.append(trades(1, i)) for i in range(1, 301)))
        return sum(r.count for r in results)

    assert asyncio.run(main()) == 300
    assert sorted(trade_ids(log).tolist()) == list(range(1, 301))


def test_subscription_has_no_gap_and_no_duplicate_at_the_catch_up_seam(log) -> None:
    log.define_instrument("SPY")
    log.append(trades(5000, 1))  # history to catch up on
    total = 1 + 5000 + 200 * 25

    async def main() -> list[int]:
        seen: list[int] = []

        async def consume() -> None:
            async for chunk in log.subscribe(0, poll_interval=0.01):
                seen.extend(range(chunk.start, chunk.stop))
                if chunk.stop >= total:
                    return

        async def produce() -> None:
            async with GroupCommitter(log) as gc:
                for k in range(200):
                    await gc.append(trades(25, 5001 + 25 * k))
                    if k % 20 == 0:
                        await asyncio.sleep(0)

        await asyncio.wait_for(asyncio.gather(consume(), produce()), timeout=60)
        return seen

    seen = asyncio.run(main())
    assert seen == list(range(total))


def test_subscription_from_the_middle_starts_exactly_there(log) -> None:
    log.define_instrument("SPY")
    log.append(trades(100, 1))

    async def first_chunk():
        async for chunk in log.subscribe(37):
            return chunk

    chunk = asyncio.run(first_chunk())
    assert (chunk.start, chunk.stop) == (37, 101)


def test_append_to_a_closed_committer_is_refused(log) -> None:
    async def main():
        gc = GroupCommitter(log)
        with pytest.raises(RuntimeError, match="not started"):
            await gc.append(trades(1, 1))

    asyncio.run(main())


def test_retry_inside_the_same_group_gets_the_original_offsets(log) -> None:
    log.define_instrument("SPY")

    async def main():
        async with GroupCommitter(log) as gc:
            return await asyncio.gather(gc.append(trades(2, 1), producer_id="p", sequence=5),
                                        gc.append(trades(2, 1), producer_id="p", sequence=5),
                                        gc.append(trades(1, 3), producer_id="p", sequence=6))

    first, retry, nxt = asyncio.run(main())
    assert (first.first_offset, first.count, first.duplicate) == (1, 2, False)
    assert (retry.first_offset, retry.count, retry.duplicate) == (1, 2, True)
    assert nxt.first_offset == 3
    assert trade_ids(log).tolist() == [1, 2, 3]
