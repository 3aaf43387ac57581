"""Jobs (batch/v1): the generated selector and pod labels, as the job strategy's generateSelector.

Unless `spec.manualSelector` is true, a new Job's pod template gets the
labels `batch.kubernetes.io/controller-uid` and `controller-uid` (the
Job's uid) and `batch.kubernetes.io/job-name` and `job-name`, and its
selector matches `batch.kubernetes.io/controller-uid`, so a Job's pods are
only ever its own. The delete side (batch/v1 Jobs orphan their pods unless
a propagation policy is given) is in `registry/deletion.py`.
"""

from __future__ import annotations

from typing import Any, Dict

from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["JobStrategy", "CONTROLLER_UID_LABEL", "JOB_NAME_LABEL"]

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"


class JobStrategy(Strategy):
    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        spec = obj.get("spec")
        if isinstance(spec, dict) and not spec.get("manualSelector"):
            generate_selector(obj)
            # SetDefaults_Job copies the template's labels to a Job without labels; upstream applies it again when
            # the object is read back from storage, after the selector was generated: clients see these labels.
            meta = obj["metadata"]
            if not meta.get("labels"):
                meta["labels"] = dict(spec["template"]["metadata"]["labels"])


def generate_selector(job: Dict[str, Any]) -> None:
    """Labels naming the Job on its pod template, and a selector on its uid (labels the user set are kept)."""
    meta = job["metadata"]
    spec = job["spec"]
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    labels = tmeta.get("labels")
    if not isinstance(labels, dict):
        labels = tmeta["labels"] = {}
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, meta.get("name", ""))
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, meta["uid"])
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match = selector.get("matchLabels")
    if not isinstance(match, dict):
        match = selector["matchLabels"] = {}
    match.setdefault(CONTROLLER_UID_LABEL, meta["uid"])
