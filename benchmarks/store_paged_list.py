"""A paged list at a pinned past revision while writes go on: the embedded store's cost per page.

    python benchmarks/store_paged_list.py           # quick: 100,000 Node-sized keys (< 1 minute)
    python benchmarks/store_paged_list.py --full    # 1,000,000 keys

A paged LIST (`limit=500` and continue tokens, as reflectors and the bench
list) reads every page at the revision of its first page. Meanwhile the
cluster keeps writing: here, between pages, as many status updates of random
keys as a fleet heartbeating every key once per 10 minutes makes while one
page is served (the 1M-node run: ~1,700 writes/s). Measured, in process,
milliseconds per page of 500 through `Store.range`:

- `pinned`: every page at the first page's revision (the store keeps that
  revision's overlay and catches it up with the events since the last page);
- `rebuilt` (the reference: the same reads with the overlay built again for
  every page, the store before it kept overlays): per page O(events since the
  pinned revision);
- `current` (the floor): the same pages at the current revision, no overlay.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from megaplane.store import Store, StoreConfig  # noqa: E402

PREFIX, END = b"/registry/minions/", b"/registry/minions0"
PAGE = 500


def _fill(store: Store, n: int, value: bytes) -> List[bytes]:
    keys = [PREFIX + b"node-%07d" % i for i in range(n)]
    for k in keys:
        store.put(k, value)
    return keys


def _list(store: Store, keys: List[bytes], value: bytes, writes_per_page: int, mode: str, rng: random.Random,
          progress: str) -> Dict[str, float]:
    pinned = store.revision
    partition = store._keyspace.partitions_for(PREFIX, END)[0][0]  # reached into to drop its overlays ("rebuilt")
    start, pages, seen, per_page = PREFIX, 0, 0, []
    while True:
        if mode == "rebuilt":
            partition._overlays.clear()
        t0 = time.perf_counter()
        r = store.range(start, END, revision=0 if mode == "current" else pinned, limit=PAGE)
        per_page.append(time.perf_counter() - t0)
        seen += len(r.kvs)
        pages += 1
        if pages % 200 == 0:
            print(f"  {progress} {mode}: {seen:,}/{len(keys):,} keys listed", file=sys.stderr, flush=True)
        if not r.more:
            break
        start = r.kvs[-1][0] + b"\x00"
        for _ in range(writes_per_page):
            store.put(keys[rng.randrange(len(keys))], value)
    assert seen == len(keys), (mode, seen)
    return {"pages": pages, "ms_per_page_median": statistics.median(per_page) * 1e3,
            "ms_per_page_last": per_page[-1] * 1e3, "seconds_total": sum(per_page)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="1,000,000 keys")
    ap.add_argument("--keys", type=int, default=0)
    ap.add_argument("--writes-per-page", type=int, default=0,
                    help="writes between two pages (default: the 1M-node run's rate over a page's time, 200)")
    args = ap.parse_args()
    n = args.keys or (1_000_000 if args.full else 100_000)
    writes = args.writes_per_page or 200
    value = b"x" * 1500
    rng = random.Random(7)
    store = Store(config=StoreConfig(history_max_events=200_000))
    t0 = time.perf_counter()
    keys = _fill(store, n, value)
    print(f"filled {n:,} keys in {time.perf_counter() - t0:.1f}s; {writes} writes between pages", file=sys.stderr)
    results = {}
    for mode in ("current", "pinned", "rebuilt"):
        results[mode] = _list(store, keys, value, writes, mode, rng, f"{n:,} keys")
    print(f"{'mode':<10} {'pages':>6} {'ms/page median':>15} {'ms/page last':>13} {'list total s':>13}")
    for mode, r in results.items():
        print(f"{mode:<10} {r['pages']:>6} {r['ms_per_page_median']:>15.3f} {r['ms_per_page_last']:>13.3f} "
              f"{r['seconds_total']:>13.2f}")
    print(json.dumps({"benchmark": "store_paged_list", "keys": n, "page": PAGE, "writes_per_page": writes,
                      "results": results,
                      "pinned_vs_rebuilt_speedup": results["rebuilt"]["seconds_total"] / results["pinned"]["seconds_total"],
                      "pinned_vs_current": results["pinned"]["seconds_total"] / results["current"]["seconds_total"]}))


if __name__ == "__main__":
    main()
