"""A store under write load, run as a separate process so tests can kill -9 it.

    python -m tests.store.crash_writer DATA_DIR fsync|buffered|acks-MODE SEED

fsync: 200 concurrent writers; each write is a txn across two partitions,
and a line "ACK <writer> <n> <revision>" is printed only after
`await store.durable(rev)`, i.e. after the store acknowledged it.

buffered: one deterministic sequence of operations (`operations(seed)`),
with "SYNCED <revision>" printed after each explicit `store.sync()`.

acks-MODE (MODE: none, buffered or fsync, every partition): the operations
of `operations(seed)` as a server runs them (flush timer on the loop, an
fsync write acknowledged after `await store.durable`), with a line
"ACK <revision>" printed after each acknowledgement. Buffered writes wait
up to 0.2 s for the disk, so a kill loses the last ones, and
revision blocks are small, so reservations are written all the time.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Iterator, Tuple

from megaplane.store import Store, StoreConfig
from megaplane.store.requests import DeleteRangeRequest, PutRequest

MODES = {b"/registry/leases/": "none"}


def config(mode: str) -> StoreConfig:
    if mode.startswith("acks-"):
        return StoreConfig(
            wal_default=mode[len("acks-") :],
            wal_flush_interval=0.2,
            revision_reserve_step=500,
            revision_reserve_seconds=0.01,
        )
    return StoreConfig(wal_default=mode, wal_modes=MODES, wal_flush_interval=0.002)


def operations(seed: int) -> Iterator[Tuple]:
    """An endless, deterministic mix of puts, deletes and cross-partition txns."""
    rng = random.Random(seed)
    kinds = [b"/registry/pods/ns/", b"/registry/nodes/", b"/registry/leases/ns/", b"/other/"]
    i = 0
    while True:
        i += 1
        kind = rng.choice(kinds)
        key = kind + b"k%d" % rng.randrange(40)
        r = rng.random()
        if r < 0.6:
            yield ("put", key, b"v%d" % i)
        elif r < 0.75:
            yield ("delete", key)
        elif r < 0.9:
            other = rng.choice(kinds) + b"t%d" % rng.randrange(10)
            yield ("txn", key, other, b"t%d" % i)
        else:
            yield ("delete_prefix", kind)


def apply(store: Store, op: Tuple) -> int:
    if op[0] == "put":
        return store.put(op[1], op[2]).revision
    if op[0] == "delete":
        return store.delete_range(op[1]).revision
    if op[0] == "delete_prefix":
        return store.delete_range(op[1], op[1][:-1] + b"0").revision
    _, key, other, value = op
    if key == other:
        return store.put(key, value).revision
    return store.txn([], [PutRequest(key, value), DeleteRangeRequest(other)]).revision


async def fsync_load(store: Store) -> None:
    out = sys.stdout

    async def writer(w: int) -> None:
        n = 0
        while True:
            r = store.txn(
                [],
                [
                    PutRequest(b"/registry/pods/w%d/k%d" % (w, n), b"%d" % n),
                    PutRequest(b"/registry/nodes/w%d/k%d" % (w, n), b"%d" % n),
                ],
            )
            await store.durable(r.revision)
            out.write(f"ACK {w} {n} {r.revision}\n")
            n += 1

    await asyncio.gather(*(writer(w) for w in range(200)))


async def buffered_load(store: Store, seed: int) -> None:
    for i, op in enumerate(operations(seed)):
        apply(store, op)
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the flush timer run
        if i % 2000 == 1999:
            store.sync()
            sys.stdout.write(f"SYNCED {store.revision}\n")
            sys.stdout.flush()


async def ack_load(store: Store, seed: int) -> None:
    out = sys.stdout
    for i, op in enumerate(operations(seed)):
        rev = apply(store, op)
        await store.durable(rev)
        out.write(f"ACK {rev}\n")
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the flush timer and the stdout flusher run


async def main() -> None:
    data_dir, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(data_dir, config(mode))
    store.attach_loop(asyncio.get_running_loop())
    sys.stdout.write(f"READY {store.revision}\n")
    sys.stdout.flush()
    if mode == "fsync" or mode.startswith("acks-"):
        # Flush acks often so the test sees them; each line is written after its ack.
        async def flusher() -> None:
            while True:
                await asyncio.sleep(0.005)
                sys.stdout.flush()

        asyncio.get_running_loop().create_task(flusher())
        if mode == "fsync":
            await fsync_load(store)
        else:
            await ack_load(store, seed)
    else:
        await buffered_load(store, seed)


if __name__ == "__main__":
    asyncio.run(main())
