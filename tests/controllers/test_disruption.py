"""The disruption controller's status arithmetic (updatePdbStatus) and the condition rules it shares with the eviction.

Pure functions, checked against the values upstream's controller computes;
the controller itself runs against a real cluster in test_drain.py.
"""

from __future__ import annotations

from typing import Any, Dict

from megaplane.apimachinery.conditions import (
    disruption_allowed_up_to_date,
    set_status_condition,
    update_disruption_allowed_condition,
)
from megaplane.controllers.disruption import pdb_status

T0, T1 = "2026-12-01T00:00:00Z", "2026-12-01T00:05:00Z"


def pdb(generation: int = 1, **status: Any) -> Dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default", "generation": generation}, "status": status}


def test_disruptions_allowed_is_healthy_minus_desired_never_negative() -> None:
    new = pdb_status(pdb(), 5, 3, 5, {}, T0)
    assert new is not None
    assert (new["disruptionsAllowed"], new["currentHealthy"], new["desiredHealthy"], new["expectedPods"]) == (2, 5, 3, 5)
    assert new["observedGeneration"] == 1 and "disruptedPods" not in new
    assert new["conditions"] == [{"type": "DisruptionAllowed", "status": "True", "observedGeneration": 1,
                                  "lastTransitionTime": T0, "reason": "SufficientPods", "message": ""}]
    short = pdb_status(pdb(), 1, 3, 5, {}, T0)
    assert short is not None and short["disruptionsAllowed"] == 0
    assert short["conditions"][0]["status"] == "False" and short["conditions"][0]["reason"] == "InsufficientPods"


def test_no_expected_pods_allows_nothing() -> None:
    """expectedCount <= 0: a PDB whose first pods have not been counted yet is safe."""
    new = pdb_status(pdb(), 2, 0, 0, {}, T0)
    assert new is not None and new["disruptionsAllowed"] == 0


def test_an_up_to_date_status_is_not_written_again() -> None:
    first = pdb_status(pdb(), 4, 2, 4, {"a": T0}, T0)
    assert first is not None and first["disruptedPods"] == {"a": T0}
    assert pdb_status(pdb(**first), 4, 2, 4, {"a": T0}, T1) is None
    # A new generation is observed even when the numbers stay.
    again = pdb_status(pdb(generation=2, **first), 4, 2, 4, {"a": T0}, T1)
    assert again is not None and again["observedGeneration"] == 2
    assert again["conditions"][0]["lastTransitionTime"] == T0  # the status did not change: nor does its time


def test_the_condition_moves_its_time_only_when_its_status_changes() -> None:
    status: Dict[str, Any] = {"disruptionsAllowed": 1}
    update_disruption_allowed_condition(status, T0)
    status["disruptionsAllowed"] = 0
    update_disruption_allowed_condition(status, T1)
    (cond,) = status["conditions"]
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == ("False", "InsufficientPods", T1)
    set_status_condition(status, {"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed",
                                  "message": "boom"}, "2026-12-01T01:00:00Z")
    (cond,) = status["conditions"]
    assert (cond["reason"], cond["message"], cond["lastTransitionTime"]) == ("SyncFailed", "boom", T1)


def test_conditions_are_up_to_date_only_for_the_observed_generation() -> None:
    status: Dict[str, Any] = {"disruptionsAllowed": 2, "observedGeneration": 1}
    update_disruption_allowed_condition(status, T0)
    assert disruption_allowed_up_to_date(pdb(1, **status))
    assert not disruption_allowed_up_to_date(pdb(2, **status))
    status["disruptionsAllowed"] = 0  # the eviction spent the last one but the condition still says True
    assert not disruption_allowed_up_to_date(pdb(1, **status))
