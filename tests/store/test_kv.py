"""Key layout helpers: partition prefixes and etcd range forms."""

from megaplane.store.kv import in_range, normalize_range, partition_prefix, prefix_end


def test_partition_prefix_for_builtin_kinds():
    assert partition_prefix(b"/registry/pods/default/p1") == b"/registry/pods/"
    assert partition_prefix(b"/registry/minions/node-1") == b"/registry/minions/"
    assert partition_prefix(b"/registry/leases/kube-node-lease/n1") == b"/registry/leases/"
    assert partition_prefix(b"/registry/services/specs/default/s") == b"/registry/services/"


def test_partition_prefix_for_groups_with_dots():
    key = b"/registry/example.com/widgets/ns/w1"
    assert partition_prefix(key) == b"/registry/example.com/widgets/"
    assert partition_prefix(b"/registry/apiextensions.k8s.io/customresourcedefinitions/x") == (
        b"/registry/apiextensions.k8s.io/customresourcedefinitions/"
    )


def test_keys_outside_kinds_share_the_default_partition():
    for key in (b"/a", b"foo", b"/registry/pods", b"/registry/", b"/registry//x", b"/registry/example.com/w"):
        assert partition_prefix(key) == b"", key


def test_prefix_end_matches_clientv3():
    assert prefix_end(b"/registry/pods/") == b"/registry/pods0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\x00"
    assert prefix_end(b"") == b"\x00"


def test_normalize_range_forms():
    assert normalize_range(b"k", b"") == (b"k", b"k\x00")
    assert normalize_range(b"k", b"\x00") == (b"k", None)
    assert normalize_range(b"\x00", b"\x00") == (b"\x00", None)
    assert normalize_range(b"a", b"c") == (b"a", b"c")
    start, end = normalize_range(b"c", b"a")
    assert not in_range(b"b", start, end) and not in_range(b"c", start, end)
