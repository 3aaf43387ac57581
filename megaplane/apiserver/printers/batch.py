"""The Job printer (batch/v1): COMPLETIONS, DURATION and STATUS as printJob computes them.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers.base import (
    _DESC_CONTAINERS,
    _DESC_IMAGES,
    Obj,
    Printer,
    _age,
    _age_col,
    _col,
    _condition_true,
    _container_cells,
    _d,
    _i,
    _is_int,
    _name,
    _name_col,
    _template_spec,
)
from megaplane.apiserver.printers.format import _since, format_label_selector, human_duration, parse_timestamp

_JOB_COLUMNS = [
    _name_col(),
    _col("Status", "string", "Status of the job."),
    _col(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded. The value increases monotonically for a given "
        "spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
    ),
    _col("Duration", "string", "Time required to complete the job."),
    _age_col(),
    _col("Containers", "string", _DESC_CONTAINERS, 1),
    _col("Images", "string", _DESC_IMAGES, 1),
    _col(
        "Selector",
        "string",
        "A label query over pods that should match the pod count. Normally, the system sets this field for "
        "you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        1,
    ),
]


def _print_job(job: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(job.get("spec")), _d(job.get("status"))
    succeeded = _i(status.get("succeeded"))
    if _is_int(spec.get("completions")):
        completions = f"{succeeded}/{spec['completions']}"
    elif _i(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_i(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"

    start, finish = parse_timestamp(status.get("startTime")), parse_timestamp(status.get("completionTime"))
    if start is None:
        duration = ""
    elif finish is None:
        duration = _since(start, now)
    else:
        duration = human_duration((finish - start).total_seconds())

    conditions = status.get("conditions")
    if _condition_true(conditions, "Complete"):
        job_status = "Complete"
    elif _condition_true(conditions, "Failed"):
        job_status = "Failed"
    elif _d(job.get("metadata")).get("deletionTimestamp"):
        job_status = "Terminating"
    elif _condition_true(conditions, "Suspended"):
        job_status = "Suspended"
    elif _condition_true(conditions, "FailureTarget"):
        job_status = "FailureTarget"
    else:
        job_status = "Running"

    return [
        _name(job),
        job_status,
        completions,
        duration,
        _age(job, now),
        *_container_cells(_template_spec(job)),
        format_label_selector(spec.get("selector")),
    ]


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("batch", "jobs"): (_JOB_COLUMNS, _print_job),
}
