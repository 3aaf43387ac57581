"""Model-based test of the store against a deliberately simple etcd v3 reference model.

A hypothesis RuleBasedStateMachine drives random operation sequences (put, range,
delete_range, txn with nested txns, compaction, leases with a fake clock, watches)
against the real `Store` and against `Model` below, and compares every result,
every error, the whole key space at every revision and every watcher's event
stream.

The model is written from etcd 3.4/3.5 semantics, not from the store's code.
Behaviour that is easy to get wrong was checked against a real etcd 3.4.23 (the
JSON gateway and etcdctl); those facts are pinned by the example tests at the end
of this file and marked "etcd 3.4.23:" in comments. Where etcd 3.4 has an
acknowledged bug the model follows etcd's documented rule instead, and says so:

* "It is not allowed to modify the same key several times within one txn"
  (etcd API guarantees). etcd 3.4's checkIntervals lets two shapes through: a
  from-key / all-keys delete (range_end "\\0") next to a put inside it
  (etcd-io/etcd#22445, #22395, #22376) and a nested txn put followed by a later
  sibling nested txn delete of the same key (etcd-io/etcd#16380, labelled a bug
  for 3.4/3.5). The model refuses both with DuplicateKeyError, so a txn never
  writes a key twice in one revision (a delete may repeat a delete).

The model keeps a full copy of the key space at every revision and the list of
events of every revision: slow and obviously right.
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional, Tuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from megaplane.store import Store, StoreConfig, errors
from megaplane.store.requests import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteResult,
    PutRequest,
    PutResult,
    RangeRequest,
    RangeResult,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResult,
)
from megaplane.testing import FakeClock

MAX_TXN_OPS = 8
MIN_LEASE_TTL = 2
MAX_LEASE_TTL = 9_000_000_000  # etcd's lease.MaxLeaseTTL

Record = Tuple[bytes, int, int, int, bytes, int]  # key, create, mod, version, value, lease
Event = Tuple[Record, Optional[Record]]  # (kv or tombstone, prev_kv)


def make_store(clock: FakeClock, history_max_events: int = 10_000) -> Store:
    return Store(
        None,
        StoreConfig(
            history_max_events=history_max_events, min_lease_ttl=MIN_LEASE_TTL, max_txn_ops=MAX_TXN_OPS
        ),
        clock=clock,
    )


# --------------------------------------------------------------------------------------------
# Reference model
# --------------------------------------------------------------------------------------------


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    """etcd key ranges: b"" = the key alone, b"\\0" = every key >= start, else [start, end)."""
    if end == b"":
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


def tombstone(key: bytes, rev: int) -> Record:
    return (key, 0, rev, 0, b"", 0)


def range_result(state: Dict[bytes, Record], r: RangeRequest, header: int) -> RangeResult:
    """etcd applierV3backend.Range over one revision's key space."""
    kvs = [state[k] for k in sorted(state) if in_range(k, r.key, r.range_end)]
    count = len(kvs)  # mvcc counts every key in range; neither limit nor the filters reduce it
    if r.count_only:
        return RangeResult([], count, False, header)
    limit = r.limit
    if (
        r.sort_order != SortOrder.NONE
        or r.min_mod_revision
        or r.max_mod_revision
        or r.min_create_revision
        or r.max_create_revision
    ):
        limit = 0  # fetch everything, filter/sort, then truncate
    if limit > 0:
        kvs = kvs[: limit + 1]  # one extra for `more`
    if r.max_mod_revision:
        kvs = [kv for kv in kvs if not kv[2] > r.max_mod_revision]
    if r.min_mod_revision:
        kvs = [kv for kv in kvs if not kv[2] < r.min_mod_revision]
    if r.max_create_revision:
        kvs = [kv for kv in kvs if not kv[1] > r.max_create_revision]
    if r.min_create_revision:
        kvs = [kv for kv in kvs if not kv[1] < r.min_create_revision]
    order = r.sort_order
    if r.sort_target != SortTarget.KEY and order == SortOrder.NONE:
        # etcd sorts ASCEND here, but the limit above was NOT lifted: it sorts the first
        # limit+1 keys only (etcd 3.4.23: checked, and so does 3.5's applier).
        order = SortOrder.ASCEND
    if order != SortOrder.NONE:
        field = {
            SortTarget.KEY: 0,
            SortTarget.VERSION: 3,
            SortTarget.CREATE: 1,
            SortTarget.MOD: 2,
            SortTarget.VALUE: 4,
        }[r.sort_target]
        # Go's sort for <= 12 items is an insertion sort: ties keep key order, also for
        # DESCEND (etcd 3.4.23: checked). Python's sort with reverse=True does the same.
        kvs = sorted(kvs, key=lambda kv: kv[field], reverse=order == SortOrder.DESCEND)
    more = False
    if r.limit > 0 and len(kvs) > r.limit:  # etcd 3.4.23: a negative limit is no limit
        kvs = kvs[: r.limit]
        more = True
    if r.keys_only:
        kvs = [kv[:4] + (b"",) + kv[5:] for kv in kvs]
    return RangeResult(kvs, count, more, header)


def compare_one(c: Compare, kv: Record) -> bool:
    field = {
        CompareTarget.VERSION: kv[3],
        CompareTarget.CREATE: kv[1],
        CompareTarget.MOD: kv[2],
        CompareTarget.VALUE: kv[4],
        CompareTarget.LEASE: kv[5],
    }[c.target]
    cmp = (field > c.value) - (field < c.value)
    return {
        CompareResult.EQUAL: cmp == 0,
        CompareResult.NOT_EQUAL: cmp != 0,
        CompareResult.GREATER: cmp > 0,
        CompareResult.LESS: cmp < 0,
    }[c.result]


def compare_holds(c: Compare, state: Dict[bytes, Record]) -> bool:
    """etcd applyCompare: every key in the range must pass; an empty range compares one
    zero KeyValue instead, except that a VALUE compare on no key always fails."""
    kvs = [state[k] for k in sorted(state) if in_range(k, c.key, c.range_end)]
    if not kvs:
        if c.target == CompareTarget.VALUE:
            return False
        return compare_one(c, (c.key, 0, 0, 0, b"", 0))
    return all(compare_one(c, kv) for kv in kvs)


def check_put_shape(r: PutRequest) -> None:
    if not r.key:
        raise errors.EmptyKeyError()
    if r.ignore_value and r.value:
        raise errors.ValueProvidedError()
    if r.ignore_lease and r.lease:
        raise errors.LeaseProvidedError()


def check_txn_shape(t: TxnRequest, max_ops: int) -> None:
    """etcd v3rpc checkTxnRequest: ops budget (nested txns get what the parent left), keys."""
    opc = max(len(t.compare), len(t.success), len(t.failure))
    if opc > max_ops:
        raise errors.TooManyOpsError()
    for c in t.compare:
        if not c.key:
            raise errors.EmptyKeyError()
    for ops in (t.success, t.failure):
        for op in ops:
            if isinstance(op, (RangeRequest, DeleteRangeRequest)):
                if not op.key:
                    raise errors.EmptyKeyError()
            elif isinstance(op, PutRequest):
                check_put_shape(op)
            elif isinstance(op, TxnRequest):
                check_txn_shape(op, max_ops - opc)
            else:  # an empty RequestOp
                raise errors.KeyNotFoundError()


def _del_interval(op: DeleteRangeRequest) -> Tuple[bytes, Optional[bytes]]:
    if op.range_end == b"":
        return (op.key, op.key + b"\0")
    if op.range_end == b"\0":
        return (op.key, None)  # to the end of the key space
    return (op.key, op.range_end)


def _deleted_by(key: bytes, dels) -> bool:
    return any(b <= key and (e is None or key < e) for b, e in dels)


def write_footprint(ops) -> Tuple[set, list]:
    """The keys a branch may put and the ranges it may delete; DuplicateKeyError when two
    different ops of the branch could write one key (a delete may overlap a delete). The
    two branches of a nested txn exclude each other, so they may repeat each other."""
    parts = []
    for op in ops:
        if isinstance(op, PutRequest):
            parts.append(({op.key}, []))
        elif isinstance(op, DeleteRangeRequest):
            parts.append((set(), [_del_interval(op)]))
        elif isinstance(op, TxnRequest):
            pt, dt = write_footprint(op.success)
            pf, df = write_footprint(op.failure)
            parts.append((pt | pf, dt + df))
    for i in range(len(parts)):
        for j in range(len(parts)):
            if i == j:
                continue
            puts_i, _ = parts[i]
            puts_j, dels_j = parts[j]
            if i < j and puts_i & puts_j:
                raise errors.DuplicateKeyError()
            if any(_deleted_by(k, dels_j) for k in puts_i):
                raise errors.DuplicateKeyError()
    puts: set = set()
    dels: list = []
    for p, d in parts:
        puts |= p
        dels += d
    return puts, dels


class Model:
    def __init__(self, now: float) -> None:
        self.rev = 1
        self.states: Dict[int, Dict[bytes, Record]] = {1: {}}
        self.events: Dict[int, List[Event]] = {}
        self.floor = -1  # etcd's compactMainRev: -1 until the first compaction
        self.leases: Dict[int, List] = {}  # id -> [granted ttl, expiry time]
        self.now = now

    # -- helpers -----------------------------------------------------------------------------

    @property
    def state(self) -> Dict[bytes, Record]:
        return self.states[self.rev]

    @property
    def compact_revision(self) -> int:
        return max(self.floor, 0)

    def commit(self, st: Dict[bytes, Record], evs: List[Event]) -> None:
        if evs:
            self.rev += 1
            self.states[self.rev] = st
            self.events[self.rev] = evs

    def lease_keys(self, lease_id: int) -> List[bytes]:
        return sorted(k for k, kv in self.state.items() if kv[5] == lease_id)

    @staticmethod
    def apply_put(st, evs, r: PutRequest, new_rev: int) -> PutResult:
        old = st.get(r.key)
        value = old[4] if r.ignore_value else r.value
        lease = old[5] if r.ignore_lease else r.lease
        if old is None:
            kv = (r.key, new_rev, new_rev, 1, value, lease)
        else:
            kv = (r.key, old[1], new_rev, old[3] + 1, value, lease)
        st[r.key] = kv
        evs.append((kv, old))  # etcd 3.4.23: a create event has no prev_kv
        return PutResult(new_rev, old if r.prev_kv else None)

    @staticmethod
    def apply_delete(st, evs, r: DeleteRangeRequest, begin: int) -> DeleteResult:
        keys = sorted(k for k in st if in_range(k, r.key, r.range_end))
        prev = []
        for k in keys:
            old = st.pop(k)
            prev.append(old)
            evs.append((tombstone(k, begin + 1), old))
        # etcd 3.4.23: the header is the new revision once the txn changed anything, else the old
        rev = begin + 1 if evs else begin
        return DeleteResult(rev, len(keys), prev if r.prev_kv else [])

    # -- KV --------------------------------------------------------------------------------------

    def range(self, r: RangeRequest) -> RangeResult:
        if not r.key:
            raise errors.EmptyKeyError()
        if r.revision > self.rev:
            raise errors.FutureRevisionError()
        rev = r.revision if r.revision > 0 else self.rev
        if rev < self.floor:
            raise errors.CompactedError()
        return range_result(self.states[rev], r, self.rev)

    def put(self, r: PutRequest) -> PutResult:
        check_put_shape(r)
        # etcd's applier checks a top-level put's lease before the ignore_* key lookup
        # (etcd 3.4.23: LeaseNotFound for put(ignore_value) of a missing key, unknown lease)
        if r.lease and r.lease not in self.leases:
            raise errors.LeaseNotFoundError()
        if (r.ignore_value or r.ignore_lease) and r.key not in self.state:
            raise errors.KeyNotFoundError()
        st, evs = dict(self.state), []
        res = self.apply_put(st, evs, r, self.rev + 1)
        self.commit(st, evs)
        return res

    def delete_range(self, r: DeleteRangeRequest) -> DeleteResult:
        if not r.key:
            raise errors.EmptyKeyError()
        st, evs = dict(self.state), []
        res = self.apply_delete(st, evs, r, self.rev)
        self.commit(st, evs)
        return res

    def _decide(self, t: TxnRequest, start) -> tuple:
        """etcd compareToPath: EVERY compare, nested ones included, sees the key space as it
        was when the outer txn started (not the outer txn's earlier writes)."""
        ok = all(compare_holds(c, start) for c in t.compare)
        ops = list(t.success if ok else t.failure)
        subs = {i: self._decide(op, start) for i, op in enumerate(ops) if isinstance(op, TxnRequest)}
        return ok, ops, subs

    def _walk(self, plan):
        _, ops, subs = plan
        for i, op in enumerate(ops):
            if isinstance(op, TxnRequest):
                yield from self._walk(subs[i])
            else:
                yield op

    def txn(self, t: TxnRequest) -> TxnResult:
        check_txn_shape(t, MAX_TXN_OPS)
        write_footprint(t.success)
        write_footprint(t.failure)
        begin, start = self.rev, self.state
        plan = self._decide(t, start)
        # etcd checkRequests: the puts of the chosen path first, then its ranges, against the
        # key space at the start of the txn; the branches not taken are not checked.
        # (etcd 3.4.23: [range rev=future, put lease=unknown] -> LeaseNotFound)
        for op in self._walk(plan):
            if isinstance(op, PutRequest):
                if (op.ignore_value or op.ignore_lease) and op.key not in start:
                    raise errors.KeyNotFoundError()
                if op.lease and op.lease not in self.leases:
                    raise errors.LeaseNotFoundError()
        for op in self._walk(plan):
            if isinstance(op, RangeRequest) and op.revision != 0:
                if op.revision > begin:
                    raise errors.FutureRevisionError()
                if op.revision < self.floor:
                    # etcd 3.4.23: so -1 passes on a never-compacted store, -2 does not, and
                    # any negative revision is "compacted" after a compaction
                    raise errors.CompactedError()
        st, evs = dict(start), []
        res = self._apply(plan, st, evs, begin, top=True)
        self.commit(st, evs)
        return res

    def _apply(self, plan, st, evs, begin: int, top: bool) -> TxnResult:
        ok, ops, subs = plan
        out = []
        for i, op in enumerate(ops):
            if isinstance(op, RangeRequest):
                header = begin + 1 if evs else begin  # etcd 3.4.23: reads its own writes
                src = self.states[op.revision] if op.revision > 0 else st
                out.append(range_result(src, op, header))
            elif isinstance(op, PutRequest):
                out.append(self.apply_put(st, evs, op, begin + 1))
            elif isinstance(op, DeleteRangeRequest):
                out.append(self.apply_delete(st, evs, op, begin))
            else:
                out.append(self._apply(subs[i], st, evs, begin, top=False))
        # etcd 3.4.23: the header of a nested txn response is empty (revision 0)
        rev = (begin + 1 if evs else begin) if top else 0
        return TxnResult(ok, rev, out)

    def compact(self, rev: int) -> int:
        # etcd 3.4.23: compact(0) succeeds once on a fresh store, compact(-1) is "compacted"
        if rev <= self.floor:
            raise errors.CompactedError()
        if rev > self.rev:
            raise errors.FutureRevisionError()
        self.floor = rev
        return self.rev

    # -- leases ------------------------------------------------------------------------------------

    def lease_grant(self, lease_id: int, ttl: int) -> int:
        """Checks for a grant with a known id (the store picks id 0's id); returns the ttl."""
        if ttl > MAX_LEASE_TTL:
            raise errors.LeaseTTLTooLargeError()
        if lease_id in self.leases:
            raise errors.LeaseExistsError()
        return max(ttl, MIN_LEASE_TTL)

    def add_lease(self, lease_id: int, ttl: int) -> None:
        self.leases[lease_id] = [ttl, self.now + ttl]

    def lease_revoke(self, lease_id: int) -> int:
        if lease_id not in self.leases:
            raise errors.LeaseNotFoundError()
        st, evs = dict(self.state), []
        for k in self.lease_keys(lease_id):  # one revision, keys in order
            old = st.pop(k)
            evs.append((tombstone(k, self.rev + 1), old))
        del self.leases[lease_id]
        self.commit(st, evs)
        return self.rev

    def lease_keepalive(self, lease_id: int) -> int:
        if lease_id not in self.leases:
            raise errors.LeaseNotFoundError()
        lease = self.leases[lease_id]
        lease[1] = self.now + lease[0]
        return lease[0]

    def lease_time_to_live(self, lease_id: int, keys: bool):
        if lease_id not in self.leases:
            return (-1, 0, [])
        ttl, expiry = self.leases[lease_id]
        return (expiry - self.now, ttl, self.lease_keys(lease_id) if keys else [])

    def expired_leases(self) -> List[int]:
        return sorted(i for i, (_, expiry) in self.leases.items() if expiry <= self.now)

    # -- watch -------------------------------------------------------------------------------------

    def watch_events(self, key, end, from_rev, to_rev, no_put, no_delete) -> List[Tuple[int, Event]]:
        out = []
        for r in range(from_rev, to_rev + 1):
            for kv, prev in self.events.get(r, []):
                if not in_range(kv[0], key, end):
                    continue
                is_delete = kv[1] == 0
                if (is_delete and no_delete) or (not is_delete and no_put):
                    continue
                out.append((r, (kv, prev)))
        return out


# --------------------------------------------------------------------------------------------
# Normalising store answers for comparison
# --------------------------------------------------------------------------------------------


def rec(kv) -> Optional[Record]:
    return None if kv is None else tuple(kv)


def norm(x):
    if isinstance(x, RangeResult):
        return ("range", [rec(kv) for kv in x.kvs], x.count, bool(x.more), x.revision)
    if isinstance(x, PutResult):
        return ("put", x.revision, rec(x.prev_kv))
    if isinstance(x, DeleteResult):
        return ("delete", x.revision, x.deleted, [rec(kv) for kv in x.prev_kvs])
    if isinstance(x, TxnResult):
        return ("txn", bool(x.succeeded), x.revision, [norm(r) for r in x.responses])
    return ("other", repr(x))


def outcome(fn):
    """("ok", normalised result) or ("error", error class name). Only StoreErrors count as
    answers: any other exception is a crash and propagates."""
    try:
        return ("ok", norm(fn()))
    except errors.StoreError as e:
        return ("error", type(e).__name__)


def norm_event(ev) -> Event:
    kv, prev = ev[0], ev[1]
    return (rec(kv), rec(prev))


# --------------------------------------------------------------------------------------------
# Input alphabet: few keys, several partitions, ranges that cross them
# --------------------------------------------------------------------------------------------

KEYS = [
    b"/registry/pods/ns/a",
    b"/registry/pods/ns/b",
    b"/registry/pods/ns/c",
    b"/registry/leases/ns/a",
    b"/registry/leases/ns/b",
    b"/registry/example.com/widgets/x",
    b"/registry/podsx",
    b"/a",
    b"/b",
    # partition edges: a resource prefix as a key, a group prefix without a name, a high byte
    b"/registry/pods/",
    b"/registry/example.com/widgets",
    b"/registry/pods/ns/\xff",
]
FIXED_RANGES = [
    (b"/registry/pods/", b"/registry/pods0"),
    (b"/registry/pods/ns/", b"/registry/pods/ns0"),
    (b"/registry/pods", b"/registry/podt"),  # /registry/pods/... and /registry/podsx
    (b"/registry/leases/", b"/registry/leases0"),
    (b"/registry/example.com/", b"/registry/example.com0"),
    (b"/registry/", b"/registry0"),
    (b"/b", b"/registry/leases0"),
    (b"/a", b"/registry/pods/ns/b"),
    (b"/registry/pods/ns/a", b"/registry/pods/ns/c"),
    (b"/registry/example.com/widgets/", b"/registry/example.com/widgets0"),
    (b"/registry/pods/ns/\xff", b"\0"),
    (b"/a", b"\0"),
    (b"/registry/p", b"\0"),
    (b"/registry/pods/ns/b", b"\0"),
    (b"\0", b"\0"),
]
VALUES = [b"", b"v1", b"v2", b"x"]


class Rev(NamedTuple):
    """A revision named relative to the machine's state, resolved when the rule runs, so
    that strategies do not depend on state (better shrinking, stable replays).
    base: "abs" (offset is the revision), "cur" (current + offset), "floor" (compaction
    floor + offset), "mid" (offset percent of the way from floor+1 to current)."""

    base: str
    offset: int


class LeaseRef(NamedTuple):
    """kind: "none" (0), "id" (that explicit id), "granted" (the offset-th most recently
    granted lease, revoked or not; 0 if there is none), "unknown" (never granted)."""

    kind: str
    n: int = 0


def weighted(*pairs):
    """Choose a strategy with probability proportional to its weight, then draw from it."""
    table = [s for w, s in pairs for _ in range(w)]

    def pick(i):
        return table[i]

    return st.sampled_from(range(len(table))).flatmap(pick)


keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
single = keys.map(lambda k: (k, b""))
key_ranges = weighted((2, single), (2, st.sampled_from(FIXED_RANGES)), (1, st.tuples(keys, keys)))
watch_ranges = weighted((1, single), (2, st.sampled_from(FIXED_RANGES)))


def empty_key(weight: int):
    """True once in `weight` draws."""
    return weighted((weight - 1, st.just(False)), (1, st.just(True)))


rarely = st.sampled_from([False] * 6 + [True])
seldom = st.sampled_from([False] * 11 + [True])

rev_current = st.just(Rev("abs", 0))
rev_any = weighted(
    (4, rev_current),
    (2, st.builds(Rev, st.just("cur"), st.integers(-3, 1))),
    (2, st.builds(Rev, st.just("mid"), st.integers(0, 100))),
    (1, st.builds(Rev, st.just("floor"), st.integers(-1, 1))),
    (1, st.builds(Rev, st.just("abs"), st.integers(-2, 3))),
)
existing_lease = st.builds(LeaseRef, st.just("granted"), st.integers(0, 2))
lease_target = weighted(
    (6, existing_lease),
    (1, st.builds(LeaseRef, st.just("id"), st.integers(1, 3))),
    (1, st.just(LeaseRef("unknown"))),
)
lease_ref = weighted(
    (8, st.just(LeaseRef("none"))),
    (4, st.builds(LeaseRef, st.just("granted"), st.integers(0, 2))),
    (1, st.builds(LeaseRef, st.just("id"), st.integers(1, 3))),
    (1, st.just(LeaseRef("unknown"))),
)


@st.composite
def put_requests(draw, empty=50):
    ignore_value, ignore_lease = draw(seldom), draw(seldom)
    value = draw(weighted((5, st.just(b"")), (1, values))) if ignore_value else draw(values)
    lease = (
        draw(weighted((5, st.just(LeaseRef("none"))), (1, lease_ref))) if ignore_lease else draw(lease_ref)
    )
    return PutRequest(
        b"" if draw(empty_key(empty)) else draw(keys),
        value,
        lease,
        draw(st.booleans()),
        ignore_value,
        ignore_lease,
    )


@st.composite
def range_requests(draw, empty=40):
    key, end = draw(key_ranges)
    if draw(empty_key(empty)):
        key = b""
    kw = {}
    if draw(st.sampled_from([False, False, True])):
        kw["sort_order"] = draw(st.sampled_from([0, 1, 2]))
        kw["sort_target"] = draw(st.sampled_from([0, 1, 2, 3, 4]))
    for f in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
        if draw(rarely) and draw(rarely):
            kw[f] = draw(st.builds(Rev, st.just("mid"), st.integers(0, 100)))
    return RangeRequest(
        key=key,
        range_end=end,
        limit=draw(st.sampled_from([0, 0, 0, 1, 2, 3, -1])),
        revision=draw(rev_any),
        keys_only=draw(rarely),
        count_only=draw(rarely),
        **kw,
    )


@st.composite
def delete_requests(draw, empty=40):
    key, end = draw(key_ranges)
    if draw(empty_key(empty)):
        key = b""
    return DeleteRangeRequest(key, end, draw(st.booleans()))


@st.composite
def compares(draw):
    key, end = draw(weighted((3, single), (1, key_ranges)))
    if draw(empty_key(150)):
        key = b""
    target = draw(st.sampled_from([0, 1, 2, 3, 4]))
    if target == CompareTarget.VALUE:
        value = draw(values)
    elif target == CompareTarget.VERSION:
        value = draw(st.integers(0, 3))
    elif target == CompareTarget.LEASE:
        value = draw(lease_ref)
    else:
        value = draw(weighted((3, st.builds(Rev, st.just("mid"), st.integers(0, 100))), (1, rev_any)))
    return Compare(key, target, draw(st.sampled_from([0, 1, 2, 3])), value, end)


def _txn_requests(depth: int, nested):
    leaf = weighted((3, range_requests(150)), (4, put_requests(150)), (2, delete_requests(150)))
    op = leaf if nested is None else weighted((3, leaf), (1, nested))
    op = weighted((150, op), (1, st.just(None)))  # None: an empty RequestOp
    size = 4 if depth == 0 else 2
    too_many = st.lists(op, min_size=MAX_TXN_OPS + 1, max_size=MAX_TXN_OPS + 1)
    ops = weighted((60, st.lists(op, max_size=size)), (1, too_many))
    return st.builds(TxnRequest, st.lists(compares(), max_size=3 if depth == 0 else 2), ops, ops)


txn_requests = _txn_requests(0, _txn_requests(1, _txn_requests(2, None)))  # nested two deep


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = make_store(self.clock)
        self.model = Model(self.clock())
        self.watchers: List[dict] = []
        self.granted: List[int] = []  # every lease id granted, in grant order
        self.auto_ids: set = set()  # ids the store picked: random, so only (in)equality is stable

    @initialize()
    def standing_watchers(self):
        """Two watchers that see the whole run: every key from revision 1, and /registry/."""
        self.watch((b"\0", b"\0"), Rev("abs", 1), False, False, False)
        self.watch((b"/registry/", b"/registry0"), Rev("abs", 0), True, False, False)

    # -- resolving symbolic values ------------------------------------------------------------

    def rev(self, r) -> int:
        if not isinstance(r, Rev):
            return r
        m = self.model
        if r.base == "abs":
            return r.offset
        if r.base == "cur":
            return m.rev + r.offset
        if r.base == "floor":
            return m.floor + r.offset
        lo = max(m.floor + 1, 1)
        return lo + (m.rev - lo) * r.offset // 100

    def lease(self, ref) -> int:
        if not isinstance(ref, LeaseRef):
            return ref
        if ref.kind == "none":
            return 0
        if ref.kind == "id":
            return ref.n
        if ref.kind == "unknown":
            return 424242
        return self.granted[-1 - ref.n] if len(self.granted) > ref.n else 0

    def resolve(self, op):
        if isinstance(op, RangeRequest):
            return op._replace(
                revision=self.rev(op.revision),
                min_mod_revision=self.rev(op.min_mod_revision),
                max_mod_revision=self.rev(op.max_mod_revision),
                min_create_revision=self.rev(op.min_create_revision),
                max_create_revision=self.rev(op.max_create_revision),
            )
        if isinstance(op, PutRequest):
            return op._replace(lease=self.lease(op.lease))
        if isinstance(op, Compare):
            if op.target == CompareTarget.LEASE:
                value = self.lease(op.value)
                result = op.result
                if value in self.auto_ids and result in (CompareResult.GREATER, CompareResult.LESS):
                    result = CompareResult.NOT_EQUAL
                return op._replace(value=value, result=result)
            return op._replace(value=self.rev(op.value))
        if isinstance(op, TxnRequest):
            return TxnRequest(
                [self.resolve(c) for c in op.compare],
                [self.resolve(o) for o in op.success],
                [self.resolve(o) for o in op.failure],
            )
        return op

    def check(self, what, model_fn, store_fn):
        expected = outcome(model_fn)
        got = outcome(store_fn)
        assert got == expected, f"{what}:\n  store: {got}\n  model: {expected}"
        return got

    # -- KV rules ---------------------------------------------------------------------------------

    @rule(r=put_requests())
    def put(self, r):
        r = self.resolve(r)
        self.check(
            f"put {r}",
            lambda: self.model.put(r),
            lambda: self.store.put(
                r.key,
                r.value,
                r.lease,
                prev_kv=r.prev_kv,
                ignore_value=r.ignore_value,
                ignore_lease=r.ignore_lease,
            ),
        )

    @rule(r=range_requests())
    def range(self, r):
        """Store.range: no sort or filter options."""
        r = self.resolve(r)
        r = RangeRequest(
            r.key, r.range_end, r.limit, r.revision, keys_only=r.keys_only, count_only=r.count_only
        )
        self.check(
            f"range {r}",
            lambda: self.model.range(r),
            lambda: self.store.range(
                r.key,
                r.range_end,
                revision=r.revision,
                limit=r.limit,
                keys_only=r.keys_only,
                count_only=r.count_only,
            ),
        )

    @rule(r=range_requests())
    def range_request(self, r):
        r = self.resolve(r)
        self.check(f"range_request {r}", lambda: self.model.range(r), lambda: self.store.range_request(r))

    @rule(r=delete_requests())
    def delete_range(self, r):
        self.check(
            f"delete_range {r}",
            lambda: self.model.delete_range(r),
            lambda: self.store.delete_range(r.key, r.range_end, prev_kv=r.prev_kv),
        )

    @rule(t=txn_requests)
    def txn(self, t):
        t = self.resolve(t)
        self.check(
            f"txn {t}",
            lambda: self.model.txn(t),
            lambda: self.store.txn(list(t.compare), list(t.success), list(t.failure)),
        )

    # hypothesis picks rules uniformly: list the writes twice so that histories grow
    put_more = put
    delete_range_more = delete_range
    txn_more = txn

    @rule(r=weighted((6, st.builds(Rev, st.just("mid"), st.integers(0, 100))), (1, rev_any)))
    def compact(self, r):
        rev = self.rev(r)
        self.check(f"compact {rev}", lambda: self.model.compact(rev), lambda: self.store.compact(rev))

    @rule()
    def every_revision_matches(self):
        """The whole key space at every revision not compacted away."""
        m = self.model
        for r in range(max(m.floor, 1), m.rev + 1):
            got = self.store.range(b"\0", b"\0", revision=r)
            want = sorted(m.states[r].values())
            assert [rec(kv) for kv in got.kvs] == want, f"key space at revision {r}"
            assert (got.count, got.revision) == (len(want), m.rev)
        for r in range(1, m.floor):
            with pytest.raises(errors.CompactedError):
                self.store.range(b"\0", b"\0", revision=r)

    # -- lease rules ------------------------------------------------------------------------------

    @rule(
        lease_id=weighted(
            (3, st.just(LeaseRef("none"))),
            (1, st.builds(LeaseRef, st.just("id"), st.integers(1, 3))),
            (1, lease_ref),
        ),
        ttl=st.sampled_from([-1, 0, 1, 2, 3, 5, 5, 10, 10, 10, MAX_LEASE_TTL, MAX_LEASE_TTL + 1]),
    )
    def lease_grant(self, lease_id, ttl):
        lease_id = self.lease(lease_id)
        try:
            expected = ("ok", self.model.lease_grant(lease_id, ttl))
        except errors.StoreError as e:
            expected = ("error", type(e).__name__)
        try:
            lease = self.store.lease_grant(ttl, lease_id)
            got = ("ok", lease.ttl)
        except errors.StoreError as e:
            got = ("error", type(e).__name__)
        assert got == expected, f"lease_grant(ttl={ttl}, id={lease_id})"
        if got[0] == "ok":
            if lease_id == 0:
                assert lease.id > 0 and lease.id not in self.model.leases, lease.id
                self.auto_ids.add(lease.id)
            else:
                assert lease.id == lease_id
            self.model.add_lease(lease.id, lease.ttl)
            self.granted.append(lease.id)

    @rule(ref=lease_target)
    def lease_revoke(self, ref):
        lid = self.lease(ref)
        self.check(
            f"lease_revoke {lid}", lambda: self.model.lease_revoke(lid), lambda: self.store.lease_revoke(lid)
        )

    @rule(ref=lease_target)
    def lease_keepalive(self, ref):
        lid = self.lease(ref)
        self.check(
            f"lease_keepalive {lid}",
            lambda: self.model.lease_keepalive(lid),
            lambda: self.store.lease_keepalive(lid),
        )

    @rule(ref=lease_target, with_keys=st.booleans())
    def lease_time_to_live(self, ref, with_keys):
        lid = self.lease(ref)
        remaining, ttl, ks = self.store.lease_time_to_live(lid, keys=with_keys)
        assert (remaining, ttl, list(ks)) == self.model.lease_time_to_live(lid, with_keys), (lid, with_keys)

    @rule(dt=st.sampled_from([1, 1, 2, 3, 5]))
    def time_passes(self, dt):
        """Advance the clock, then expire. Leases expiring together may be revoked in any
        order (etcd revokes them concurrently), each in its own revision if it has keys."""
        m = self.model
        self.clock.advance(dt)
        m.now = self.clock()
        expired = m.expired_leases()
        old_rev = m.rev
        n = self.store.expire_leases()
        assert n == len(expired), f"expire_leases() returned {n}, expected {len(expired)} ({expired})"
        pending = {lid: set(m.lease_keys(lid)) for lid in expired}
        new_rev = self.store.revision
        assert new_rev - old_rev == sum(1 for ks in pending.values() if ks), (old_rev, new_rev, pending)
        for r in range(old_rev + 1, new_rev + 1):
            before = {kv[0] for kv in self.store.range(b"\0", b"\0", revision=r - 1).kvs}
            after = {kv[0] for kv in self.store.range(b"\0", b"\0", revision=r).kvs}
            match = [lid for lid, ks in pending.items() if ks and ks == before - after]
            assert len(match) == 1, f"revision {r} deleted {before - after}, pending leases {pending}"
            m.lease_revoke(match[0])
            del pending[match[0]]
        for lid in pending:
            m.lease_revoke(lid)
        assert m.rev == new_rev

    # -- watch rules ------------------------------------------------------------------------------

    @precondition(lambda self: sum(1 for w in self.watchers if not w["closed"]) < 6)
    @rule(
        where=watch_ranges,
        start=weighted(
            (3, rev_current),
            (3, st.builds(Rev, st.just("mid"), st.integers(0, 100))),
            (1, st.builds(Rev, st.just("cur"), st.integers(1, 3))),
            (1, st.builds(Rev, st.just("floor"), st.integers(-2, 0))),
            (2, st.just(Rev("abs", 1))),
        ),
        prev_kv=st.booleans(),
        no_put=rarely,
        no_delete=rarely,
        lazy=st.sampled_from([False, False, True]),
    )
    def watch(self, where, start, prev_kv, no_put, no_delete, lazy=False):
        m = self.model
        key, end = where
        start = 0 if start == Rev("abs", 0) else max(self.rev(start), 1)  # 0: from now on
        w = self.store.watch(key, end, start, prev_kv=prev_kv, no_put=no_put, no_delete=no_delete)
        self.watchers.append(
            dict(
                w=w,
                key=key,
                end=end,
                no_put=no_put,
                no_delete=no_delete,
                next_rev=m.rev + 1 if start == 0 else start,
                compacted=start != 0 and start < m.floor,
                floor=m.floor,
                closed=False,
                lazy=lazy,
            )
        )

    @precondition(lambda self: any(not w["closed"] for w in self.watchers))
    @rule(i=st.integers(0, 5))
    def cancel_watch(self, i):
        open_ = [w for w in self.watchers if not w["closed"]]
        mw = open_[i % len(open_)]
        mw["w"].cancel()
        mw["closed"] = True

    @precondition(lambda self: any(w["lazy"] and not w["closed"] for w in self.watchers))
    @rule(i=st.integers(0, 5))
    def drain_lazy_watcher(self, i):
        """A watcher that was not read for a while, possibly across compactions: it must
        deliver exactly the next events of its stream, and if that is not all of them it
        must be cancelled with a compact revision past the last event it delivered."""
        m = self.model
        lazy = [w for w in self.watchers if w["lazy"] and not w["closed"]]
        mw = lazy[i % len(lazy)]
        w = mw["w"]
        got = [norm_event(ev) for ev in w.take()]
        if mw["compacted"]:  # created below the floor: any floor since then will do
            assert got == [] and w.canceled, mw
            assert mw["floor"] <= w.compact_revision <= m.compact_revision, (w.compact_revision, mw)
            mw["closed"] = True
            return
        want = m.watch_events(mw["key"], mw["end"], mw["next_rev"], m.rev, mw["no_put"], mw["no_delete"])
        msg = f"lazy watch [{mw['key']!r}, {mw['end']!r}) from {mw['next_rev']}:\n  got  {got}\n  want {want}"
        assert len(got) <= len(want), msg
        for g, (r, (kv, prev)) in zip(got, want):
            assert g[0] == kv and g[1] in (prev, None if r - 1 < m.floor else prev), msg
        if len(got) < len(want):
            assert w.canceled, msg
            assert 0 < w.compact_revision <= m.compact_revision, msg
            if got:
                assert want[len(got) - 1][0] < w.compact_revision, msg
            mw["closed"] = True
            return
        if w.canceled:  # cancelled with nothing missing is allowed only for a compaction
            assert 0 < w.compact_revision <= m.compact_revision, msg
            mw["closed"] = True
            return
        mw["next_rev"] = max(mw["next_rev"], m.rev + 1)

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def same_state(self):
        m = self.model
        assert self.store.revision == m.rev
        assert self.store.compact_revision == m.compact_revision
        got = self.store.range(b"\0", b"\0")
        assert [rec(kv) for kv in got.kvs] == sorted(m.state.values())
        assert sorted(self.store.lease_ids()) == sorted(m.leases)

    @invariant()
    def watch_streams(self):
        m = self.model
        for mw in self.watchers:
            if mw["lazy"] and not mw["closed"]:
                continue  # drained by drain_lazy_watcher
            w = mw["w"]
            got = [norm_event(ev) for ev in w.take()]
            if mw["closed"]:
                assert got == [], "a cancelled watcher delivered events"
                continue
            if mw["compacted"]:
                assert got == []
                assert w.canceled, "watch from below the compaction floor not cancelled"
                assert w.compact_revision == m.compact_revision
                mw["closed"] = True
                continue
            assert not w.canceled, f"watcher {mw} cancelled (compact_revision={w.compact_revision})"
            want = m.watch_events(mw["key"], mw["end"], mw["next_rev"], m.rev, mw["no_put"], mw["no_delete"])
            msg = f"watch [{mw['key']!r}, {mw['end']!r}):\n  got  {got}\n  want {[e for _, e in want]}"
            assert len(got) == len(want), msg
            for g, (r, (kv, prev)) in zip(got, want):
                if r - 1 < m.floor and g[0] == kv and g[1] is None:
                    continue  # etcd cannot read a prev_kv below the compaction floor: None is fine
                assert g == (kv, prev), msg
            mw["next_rev"] = max(mw["next_rev"], m.rev + 1)


TestStoreModel = StoreMachine.TestCase
TestStoreModel.settings = settings(
    max_examples=2000 if os.environ.get("MEGAPLANE_SCALE") == "full" else 200,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    report_multiple_bugs=False,  # shrink one failure only: keeps a failing run short
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# --------------------------------------------------------------------------------------------
# Example-based tests: the trickiest semantics. KV, txn and watch facts were checked against a
# real etcd 3.4.23; lease timing follows etcd's lessor (a lease is expired once remaining <= 0).
# --------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def s(clock) -> Store:
    return make_store(clock)


def kvs(res) -> List[Record]:
    return [tuple(kv) for kv in res.kvs]


def events(w) -> List[Event]:
    return [norm_event(ev) for ev in w.take()]


def test_nested_compares_see_the_state_at_the_start_of_the_outer_txn(s):
    # etcd compareToPath evaluates every compare before any op runs.
    s.put(b"/k", b"old")  # rev 2
    nested = TxnRequest(
        [Compare(b"/k", CompareTarget.VALUE, CompareResult.EQUAL, b"new")],
        [RangeRequest(b"/zz")],
        [RangeRequest(b"/k")],
    )
    r = s.txn([], [PutRequest(b"/k", b"new"), nested], [])
    assert r.succeeded and r.revision == 3
    inner = r.responses[1]
    assert inner.succeeded is False  # the compare saw "old", not the put just before it
    assert kvs(inner.responses[0]) == [(b"/k", 2, 3, 2, b"new", 0)]  # ...but the range reads the put


def test_txn_ops_read_their_own_writes_and_headers_follow_the_first_change(s):
    s.put(b"/k", b"c")  # rev 2
    r = s.txn(
        [],
        [
            RangeRequest(b"/k"),
            DeleteRangeRequest(b"/nothere"),
            PutRequest(b"/k", b"new"),
            RangeRequest(b"/k"),
            RangeRequest(b"/k", revision=2),  # an explicit revision reads committed data
            DeleteRangeRequest(b"/nothere2"),
        ],
        [],
    )
    assert r.revision == 3
    assert norm(r.responses[0]) == ("range", [(b"/k", 2, 2, 1, b"c", 0)], 1, False, 2)
    assert norm(r.responses[1]) == ("delete", 2, 0, [])  # nothing changed yet: old revision
    assert norm(r.responses[2]) == ("put", 3, None)
    assert norm(r.responses[3]) == ("range", [(b"/k", 2, 3, 2, b"new", 0)], 1, False, 3)
    assert norm(r.responses[4]) == ("range", [(b"/k", 2, 2, 1, b"c", 0)], 1, False, 3)
    assert norm(r.responses[5]) == ("delete", 3, 0, [])


def test_nested_txn_response_carries_no_revision(s):
    # etcd fills only the outer header; a nested TxnResponse has an empty header (revision 0).
    r = s.txn([], [PutRequest(b"/k", b"v"), TxnRequest([], [RangeRequest(b"/k")], [])], [])
    assert r.revision == 2
    assert r.responses[1].revision == 0


def test_only_the_chosen_branch_is_checked(s):
    missing = Compare(b"/nokey", CompareTarget.VERSION, CompareResult.EQUAL, 0)  # true
    r = s.txn([missing], [RangeRequest(b"/k")], [PutRequest(b"/k", b"v", lease=424242)])
    assert r.succeeded
    with pytest.raises(errors.FutureRevisionError):
        s.txn([missing], [RangeRequest(b"/k", revision=100)], [PutRequest(b"/k", b"v", lease=424242)])
    # a VALUE compare on a missing key is always false
    value_cmp = Compare(b"/nokey", CompareTarget.VALUE, CompareResult.EQUAL, b"")
    with pytest.raises(errors.LeaseNotFoundError):
        s.txn([value_cmp], [RangeRequest(b"/k", revision=100)], [PutRequest(b"/k", b"v", lease=424242)])
    assert s.revision == 1


def test_txn_checks_every_put_before_any_range(s):
    # etcd checkRequests runs the put checks over the whole chosen path, then the range checks.
    with pytest.raises(errors.LeaseNotFoundError):
        s.txn([], [RangeRequest(b"/k", revision=100), PutRequest(b"/k", b"v", lease=424242)], [])
    with pytest.raises(errors.KeyNotFoundError):
        s.txn([], [RangeRequest(b"/k", revision=100), PutRequest(b"/k", ignore_value=True)], [])
    assert s.revision == 1


def test_put_error_precedence(s):
    # A top-level put checks its lease before the ignore_value lookup; inside a txn the
    # ignore_value lookup comes first (etcd applier Put vs checkRequestPut).
    with pytest.raises(errors.LeaseNotFoundError):
        s.put(b"/k", b"", 424242, ignore_value=True)
    with pytest.raises(errors.KeyNotFoundError):
        s.txn([], [PutRequest(b"/k", b"", 424242, ignore_value=True)], [])
    with pytest.raises(errors.ValueProvidedError):
        s.put(b"/k", b"v", ignore_value=True)
    with pytest.raises(errors.LeaseProvidedError):
        s.put(b"/k", b"v", 424242, ignore_lease=True)
    with pytest.raises(errors.EmptyKeyError):
        s.put(b"", b"v")
    assert s.revision == 1


def test_range_negative_revision_is_current_at_top_level_but_compacted_in_a_txn(s):
    s.put(b"/k", b"v")  # rev 2
    assert kvs(s.range(b"/k", revision=-5)) == [(b"/k", 2, 2, 1, b"v", 0)]
    # etcd checkRequestRange: revision < compactMainRev, which is -1 before any compaction
    assert s.txn([], [RangeRequest(b"/k", revision=-1)], []).succeeded
    with pytest.raises(errors.CompactedError):
        s.txn([], [RangeRequest(b"/k", revision=-2)], [])
    s.compact(1)
    with pytest.raises(errors.CompactedError):
        s.txn([], [RangeRequest(b"/k", revision=-1)], [])
    assert kvs(s.range(b"/k", revision=-1)) == [(b"/k", 2, 2, 1, b"v", 0)]


def test_compaction_bounds(s):
    # etcd's compactMainRev starts at -1, so compacting revision 0 once succeeds.
    with pytest.raises(errors.CompactedError):
        s.compact(-1)
    with pytest.raises(errors.FutureRevisionError):
        s.compact(2)
    assert s.compact(0) == 1
    assert s.compact_revision == 0
    with pytest.raises(errors.CompactedError):
        s.compact(0)
    s.put(b"/k", b"v")
    assert s.compact(2) == 2 and s.compact_revision == 2
    with pytest.raises(errors.CompactedError):
        s.compact(2)
    with pytest.raises(errors.CompactedError):
        s.range(b"/k", revision=1)
    assert kvs(s.range(b"/k", revision=2)) == [(b"/k", 2, 2, 1, b"v", 0)]  # the floor itself is readable


def test_range_limit_count_and_filters(s):
    for k in (b"/k1", b"/k2", b"/k2", b"/k3", b"/k1", b"/k1", b"/k4", b"/k5"):
        s.put(k, b"v")
    # /k1 v3, /k2 v2, /k3 v1, /k4 v1, /k5 v1
    r = s.range(b"/k", b"/l", limit=2)
    assert ([kv[0] for kv in r.kvs], r.count, r.more) == ([b"/k1", b"/k2"], 5, True)
    r = s.range(b"/k", b"/l", limit=2, count_only=True)
    assert (r.kvs, r.count, r.more) == ([], 5, False)
    r = s.range(b"/k", b"/l", limit=-1)  # a negative limit is no limit
    assert (len(r.kvs), r.count, r.more) == (5, 5, False)
    r = s.range(b"/k1", limit=-1)  # ...for a single key too
    assert (kvs(r), r.count, r.more) == ([(b"/k1", 2, 7, 3, b"v", 0)], 1, False)
    # filters prune kvs, never count
    r = s.range_request(RangeRequest(b"/k", b"/l", limit=1, min_mod_revision=8))
    assert ([kv[0] for kv in r.kvs], r.count, r.more) == ([b"/k4"], 5, True)
    r = s.range_request(RangeRequest(b"/k", b"/l", max_mod_revision=1))
    assert (r.kvs, r.count, r.more) == ([], 5, False)
    # sort target other than KEY with order NONE sorts ASCEND, but only the first limit+1 keys
    r = s.range_request(RangeRequest(b"/k", b"/l", limit=1, sort_target=SortTarget.VERSION))
    assert [kv[0] for kv in r.kvs] == [b"/k2"]
    r = s.range_request(
        RangeRequest(b"/k", b"/l", limit=1, sort_target=SortTarget.VERSION, sort_order=SortOrder.ASCEND)
    )
    assert [kv[0] for kv in r.kvs] == [b"/k3"]
    # ties keep key order, DESCEND too
    r = s.range_request(
        RangeRequest(b"/k", b"/l", sort_target=SortTarget.VERSION, sort_order=SortOrder.DESCEND)
    )
    assert [kv[0] for kv in r.kvs] == [b"/k1", b"/k2", b"/k3", b"/k4", b"/k5"]
    r = s.range(b"/k", b"/l", keys_only=True, limit=1)
    assert kvs(r) == [(b"/k1", 2, 7, 3, b"", 0)]
    # inverted and empty ranges match nothing; from-key and all-keys ranges
    assert s.range(b"/l", b"/k").count == 0 and s.range(b"/k1", b"/k1").count == 0
    assert s.range(b"/k3", b"\0").count == 3 and s.range(b"\0", b"\0").count == 5


def test_duplicate_keys_in_a_txn(s):
    s.put(b"/a", b"1")
    P, D, T = PutRequest, DeleteRangeRequest, TxnRequest
    dup = [
        [P(b"/a"), P(b"/a")],
        [P(b"/a"), D(b"/a")],
        [D(b"/", b"0"), P(b"/a")],
        [T([], [P(b"/a")], []), P(b"/a")],
        [T([], [D(b"/a")], []), T([], [P(b"/a")], [])],
        [T([], [P(b"/a")], []), T([], [], [P(b"/a")])],
        # etcd 3.4 lets the next two through (etcd-io/etcd#16380, #22445); the store must not
        [T([], [P(b"/a")], []), T([], [D(b"/a")], [])],
        [D(b"/", b"\0"), P(b"/a")],
        [D(b"\0", b"\0"), P(b"/a")],
    ]
    for ops in dup:
        with pytest.raises(errors.DuplicateKeyError):
            s.txn([], ops, [])
    assert s.revision == 2
    ok = [
        [D(b"/a"), D(b"/", b"0")],  # deletes may overlap
        [T([], [P(b"/a")], [P(b"/a")])],  # then/else exclude each other
        [T([], [P(b"/a")], [D(b"/a")])],
        [D(b"/b", b"/a"), P(b"/a")],  # an inverted range deletes nothing
        [P(b"/a", b"1"), P(b"/b", b"2")],
    ]
    for ops in ok:
        assert s.txn([], ops, []).succeeded
    assert s.revision == 7
    assert kvs(s.range(b"/", b"0")) == [(b"/a", 4, 7, 4, b"1", 0), (b"/b", 7, 7, 1, b"2", 0)]


def test_too_many_ops_counts_the_nested_budget(clock):
    s = Store(None, StoreConfig(history_max_events=1000, min_lease_ttl=2, max_txn_ops=4), clock=clock)
    R = RangeRequest(b"/a")
    assert s.txn([], [R, R, TxnRequest([], [R], [])], []).succeeded  # nested gets 4 - 3 = 1
    with pytest.raises(errors.TooManyOpsError):
        s.txn([], [R, R, TxnRequest([], [R, R], [])], [])
    with pytest.raises(errors.TooManyOpsError):
        s.txn([Compare(b"/a", 0, 0, 0)] * 5, [], [])
    with pytest.raises(errors.KeyNotFoundError):
        s.txn([], [None], [])  # an empty RequestOp
    with pytest.raises(errors.EmptyKeyError):
        s.txn([Compare(b"", 0, 0, 0)], [], [])


def test_watch_event_shapes(s):
    w = s.watch(b"/k", prev_kv=False)
    s.put(b"/k", b"v1")
    s.put(b"/k", b"v2")
    s.delete_range(b"/k")
    assert events(w) == [
        ((b"/k", 2, 2, 1, b"v1", 0), None),  # a create event has no prev_kv
        ((b"/k", 2, 3, 2, b"v2", 0), (b"/k", 2, 2, 1, b"v1", 0)),
        ((b"/k", 0, 4, 0, b"", 0), (b"/k", 2, 3, 2, b"v2", 0)),  # tombstone
    ]
    assert not w.canceled


def test_watch_replay_keeps_txn_order_across_partitions(s):
    # Events of one revision come in the order of the txn's ops (etcd: sub-revision order),
    # both live and replayed from history.
    keys_in_op_order = [b"/registry/pods/ns/a", b"/registry/leases/ns/a", b"/b", b"/a"]
    live = s.watch(b"/", b"0")
    s.txn([], [PutRequest(k, b"1") for k in keys_in_op_order], [])  # rev 2
    s.delete_range(b"/", b"0")  # rev 3: deletes in key order
    replay = s.watch(b"/", b"0", start_revision=2)
    deletes = sorted(keys_in_op_order)
    for w in (live, replay):
        assert [ev[0][0] for ev in events(w)] == keys_in_op_order + deletes


def test_watch_from_below_the_compaction_floor_is_cancelled(s):
    for i in range(5):
        s.put(b"/k", b"v%d" % i)  # revs 2..6
    s.compact(4)
    w = s.watch(b"/k", start_revision=3)
    assert events(w) == [] and w.canceled and w.compact_revision == 4
    w = s.watch(b"/k", start_revision=4)  # the floor itself is still watchable
    evs = events(w)
    assert [ev[0][2] for ev in evs] == [4, 5, 6] and not w.canceled
    assert evs[1][1] == (b"/k", 2, 4, 3, b"v2", 0)
    assert evs[0][1] in (None, (b"/k", 2, 3, 2, b"v1", 0))  # etcd cannot read revision 3 any more


def test_watch_filters_and_future_start(s):
    w_nop = s.watch(b"/k", no_put=True)
    w_nod = s.watch(b"/k", no_delete=True)
    w_future = s.watch(b"/k", start_revision=4)
    s.put(b"/k", b"v")  # 2
    s.delete_range(b"/k")  # 3
    s.put(b"/k", b"v")  # 4
    assert [ev[0][2] for ev in events(w_nop)] == [3]
    assert [ev[0][2] for ev in events(w_nod)] == [2, 4]
    assert [ev[0][2] for ev in events(w_future)] == [4]


def test_lease_lifecycle(s, clock):
    lease = s.lease_grant(1, 7)
    assert (lease.id, lease.ttl) == (7, MIN_LEASE_TTL)  # raised to the minimum
    with pytest.raises(errors.LeaseExistsError):
        s.lease_grant(5, 7)
    with pytest.raises(errors.LeaseTTLTooLargeError):
        s.lease_grant(MAX_LEASE_TTL + 1, 8)
    s.put(b"/b", b"1", 7)
    s.put(b"/a", b"1", 7)
    s.put(b"/c", b"1", 7)
    s.put(b"/c", b"2")  # detaches /c
    assert s.lease_time_to_live(7, keys=True) == (2, 2, [b"/a", b"/b"])
    w = s.watch(b"/", b"0")
    rev = s.revision
    assert s.lease_revoke(7) == rev + 1  # both keys in one revision, in key order
    assert [(ev[0][0], ev[0][2]) for ev in events(w)] == [(b"/a", rev + 1), (b"/b", rev + 1)]
    assert s.lease_time_to_live(7) == (-1, 0, [])
    with pytest.raises(errors.LeaseNotFoundError):
        s.lease_revoke(7)
    with pytest.raises(errors.LeaseNotFoundError):
        s.lease_keepalive(7)
    with pytest.raises(errors.LeaseNotFoundError):
        s.put(b"/a", b"1", 7)
    s.lease_grant(3, 9)
    assert s.lease_revoke(9) == rev + 1  # no keys: no new revision


def test_lease_expiry_on_the_fake_clock(s, clock):
    s.lease_grant(3, 1)  # expires at +3
    s.lease_grant(4, 2)  # expires at +4
    s.put(b"/one", b"v", 1)
    s.put(b"/two", b"v", 2)
    clock.advance(2)
    assert s.expire_leases() == 0
    assert s.lease_keepalive(1) == 3  # now expires at +5
    clock.advance(2)
    assert s.expire_leases() == 1  # lease 2 ran out exactly now: expired (remaining <= 0)
    assert [kv[0] for kv in s.range(b"/", b"0").kvs] == [b"/one"]
    assert s.lease_time_to_live(1, keys=True) == (1, 3, [b"/one"])
    clock.advance(1)
    assert s.expire_leases() == 1
    assert s.range(b"/", b"0").count == 0 and s.lease_ids() == []
    assert s.revision == 5


def test_errors_change_nothing(s):
    s.put(b"/k", b"v")
    w = s.watch(b"\0", b"\0")
    bad = [
        lambda: s.put(b"", b"v"),
        lambda: s.delete_range(b""),
        lambda: s.range(b""),
        lambda: s.range(b"/k", revision=3),
        lambda: s.put(b"/nokey", b"", ignore_lease=True),
        lambda: s.txn([], [PutRequest(b"/k", b"2"), PutRequest(b"/k", b"3")], []),
        lambda: s.txn([], [PutRequest(b"/x", b"2"), PutRequest(b"/k", b"3", lease=5)], []),
        lambda: s.lease_keepalive(5),
        lambda: s.compact(3),
    ]
    for f in bad:
        with pytest.raises(errors.StoreError):
            f()
    assert s.revision == 2 and s.compact_revision == 0
    assert kvs(s.range(b"\0", b"\0")) == [(b"/k", 2, 2, 1, b"v", 0)]
    assert events(w) == []


def test_slow_watchers_with_a_tiny_history_window(clock):
    """history_max_events=5, 30 revisions, watchers read only at the end.

    Asserted: without a compaction every watcher delivers its whole stream, exactly
    (etcd never drops watch events it still has). After a compaction, a watcher that is
    behind either still delivers its whole stream, or delivers an exact prefix of it and
    is cancelled with a compact revision past its last delivered event and no greater
    than the store's compaction floor: it never silently skips events."""
    for compact_at in (None, 12):
        s = make_store(clock, history_max_events=5)
        model = Model(clock())
        specs = [
            (b"/k", b"/l", 0),
            (b"/k", b"/l", 1),
            (b"/k1", b"", 3),
            (b"\0", b"\0", 8),
            (b"/k", b"\0", 15),
        ]
        watchers = [(s.watch(k, e, start_revision=r), k, e, r if r else 2) for k, e, r in specs]
        for i in range(30):
            r = PutRequest(b"/k%d" % (i % 4), b"v%d" % i) if i % 5 else DeleteRangeRequest(b"/k%d" % (i % 4))
            if isinstance(r, PutRequest):
                s.put(r.key, r.value)
                model.put(r)
            else:
                s.delete_range(r.key)
                model.delete_range(r)
            if i == 20 and compact_at:
                s.compact(compact_at)
                model.compact(compact_at)
        assert s.revision == model.rev
        for w, k, e, start in watchers:
            got = events(w)
            want = [ev for _, ev in model.watch_events(k, e, start, model.rev, False, False)]
            if compact_at is None or not w.canceled:
                assert [g[0] for g in got] == [ev[0] for ev in want] and not w.canceled
                continue
            assert [g[0] for g in got] == [ev[0] for ev in want[: len(got)]]
            assert len(got) < len(want)
            assert 0 < w.compact_revision <= s.compact_revision
            if got:
                assert got[-1][0][2] < w.compact_revision
