"""The pure parts of the endpoints, endpointslice and history code: repacking and truncating Endpoints subsets,
packing slices, topology hint allocation, revision hashing. No server: these are functions of their inputs."""

from __future__ import annotations

from typing import Any, Dict, List

from megaplane.controllers.endpoints import MAX_CAPACITY, OVER_CAPACITY, repack_subsets, truncate_endpoints
from megaplane.controllers.endpointslice import _endpoint_key, new_slice, reconcile_port_mapping
from megaplane.controllers.history import go_json, hash_revision, template_patch
from megaplane.controllers.topologycache import SliceInfo, TopologyCache, cpu_millis

SERVICE: Dict[str, Any] = {"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"},
                           "spec": {"clusterIP": "fd00::1", "selector": {"app": "web"}}}


def addr(i: int) -> Dict[str, Any]:
    return {"ip": f"fd00::{i:x}", "targetRef": {"kind": "Pod", "name": f"p{i}", "uid": f"u{i}"}}


def test_repack_merges_ports_and_not_ready_wins() -> None:
    p80, p443 = {"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}
    packed = repack_subsets([
        {"addresses": [addr(1)], "ports": [p80]}, {"addresses": [addr(1)], "ports": [p443]},
        {"addresses": [addr(2)], "ports": [p80]}, {"notReadyAddresses": [addr(2)], "ports": [p80]},
    ])
    # Port 80 is offered by 1 (ready) and 2 (not ready: not ready trumps ready), 443 by 1 alone: two subsets.
    assert shapes(packed) == {(("fd00::1",), ("fd00::2",), (80,)), (("fd00::1",), (), (443,))}
    # Ports offered by the same addresses share one subset.
    merged = repack_subsets([{"addresses": [addr(1)], "ports": [p80]}, {"addresses": [addr(1)], "ports": [p443]}])
    assert shapes(merged) == {(("fd00::1",), (), (80, 443))}


def shapes(subsets: List[Dict[str, Any]]) -> Any:
    return {(tuple(a["ip"] for a in s.get("addresses", ())), tuple(a["ip"] for a in s.get("notReadyAddresses", ())),
             tuple(p["port"] for p in s["ports"])) for s in subsets}


def test_truncate_keeps_ready_first_and_proportional_shares() -> None:
    subsets: List[Dict[str, Any]] = [
        {"addresses": [addr(i) for i in range(600)], "notReadyAddresses": [addr(i) for i in range(600, 700)]},
        {"addresses": [addr(i) for i in range(700, 1300)]},
    ]
    assert truncate_endpoints(subsets)
    assert [len(s.get("addresses", ())) for s in subsets] == [500, 500]  # 1200 ready: each half of 1000
    assert not any(s.get("notReadyAddresses") for s in subsets)
    small = [{"addresses": [addr(i) for i in range(900)], "notReadyAddresses": [addr(i) for i in range(900, 1050)]}]
    assert truncate_endpoints(small)
    assert (len(small[0]["addresses"]), len(small[0]["notReadyAddresses"])) == (900, 100)
    fits = [{"addresses": [addr(i) for i in range(MAX_CAPACITY)]}]
    assert not truncate_endpoints(fits)
    assert OVER_CAPACITY == "endpoints.kubernetes.io/over-capacity"


def endpoint(i: int) -> Dict[str, Any]:
    return {"addresses": [f"fd00::{i:x}"], "conditions": {"ready": True, "serving": True, "terminating": False},
            "targetRef": {"kind": "Pod", "namespace": "default", "name": f"p{i:03d}", "uid": f"u{i}"},
            "zone": "z" + "abc"[i % 3], "nodeName": f"n{i % 3}"}


def desired(n: int) -> Dict[Any, Dict[str, Any]]:
    return {_endpoint_key(e): e for e in (endpoint(i) for i in range(n))}


def test_slices_pack_to_the_limit_and_fill_the_closest_fit() -> None:
    create, update, delete = reconcile_port_mapping(SERVICE, [], desired(250), [], "IPv6", 100)
    assert sorted(len(s["endpoints"]) for s in create) == [50, 100, 100] and not update and not delete
    assert all(s["metadata"]["generateName"] == "web-" for s in create)
    # Existing slices of 100 and 95 and 2 new endpoints: the 95 one takes them (tightest fit), the 100 stays.
    full = new_slice(SERVICE, [], "IPv6")
    full["metadata"]["name"], full["endpoints"] = "web-a", [endpoint(i) for i in range(100)]
    most = new_slice(SERVICE, [], "IPv6")
    most["metadata"]["name"], most["endpoints"] = "web-b", [endpoint(i) for i in range(100, 195)]
    create, update, delete = reconcile_port_mapping(SERVICE, [full, most], desired(197), [], "IPv6", 100)
    assert not create and not delete
    assert [(s["metadata"]["name"], len(s["endpoints"])) for s in update] == [("web-b", 97)]


def node(name: str, zone: str, cpu: str) -> Dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"allocatable": {"cpu": cpu}, "conditions": [{"type": "Ready", "status": "True"}]}}


def test_hints_follow_zone_cpu_and_go_when_a_zone_cannot_get_its_share() -> None:
    cache = TopologyCache()
    assert cache.set_nodes([node("a", "za", "4"), node("b", "zb", "4000m"), node("c", "zc", "8")])
    assert cpu_millis("4000m") == cpu_millis("4") == 4000
    slice_ = {"endpoints": [dict(endpoint(i), zone="za") for i in range(4)]
              + [dict(endpoint(i), zone="zc") for i in range(4, 8)], "addressType": "IPv6"}
    create, update, events = cache.add_hints(SliceInfo("default/web", "IPv6", [slice_], []))
    zones = [e["hints"]["forZones"][0]["name"] for e in create[0]["endpoints"]]
    # CPU shares 1/4, 1/4, 1/2 of 8 endpoints: 2, 2, 4 hints although zb has no endpoint of its own.
    assert sorted(zones) == ["za", "za", "zb", "zb", "zc", "zc", "zc", "zc"]
    assert events[-1][1] == "TopologyAwareHintsEnabled"
    two = {"endpoints": [dict(endpoint(i), zone="za") for i in range(2)], "addressType": "IPv6"}
    create, _, events = cache.add_hints(SliceInfo("default/web", "IPv6", [two], []))
    assert all("hints" not in e for e in create[0]["endpoints"])
    assert events[0][1:] == ("TopologyAwareHintsDisabled",
                             "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv6")


def test_revision_hash_is_of_go_json_bytes_and_the_collision_count() -> None:
    sts = {"spec": {"template": {"metadata": {"labels": {"b": "2", "a": "<&>"}}, "spec": {"containers": []}}}}
    data = template_patch(sts)
    assert go_json(data) == (b'{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"a":"\\u003c\\u0026'
                             b'\\u003e","b":"2"}},"spec":{"containers":[]}}}}')
    assert hash_revision(data, None) == hash_revision({"spec": dict(data["spec"])}, None)
    assert hash_revision(data, None) != hash_revision(data, 1) != hash_revision(data, 2)
    assert set(hash_revision(data, None)) <= set("bcdfghjklmnpqrstvwxz2456789")
