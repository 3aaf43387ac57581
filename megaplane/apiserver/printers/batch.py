"""The Job and CronJob printers (batch/v1): as printJob and printCronJob compute their cells.
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
from megaplane.apiserver.printers.format import (
    _since,
    age,
    format_label_selector,
    human_duration,
    parse_timestamp,
)

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


_CRONJOB_COLUMNS = [
    _name_col(),
    _col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    _col(
        "Timezone",
        "string",
        "The time zone name for the given schedule, see "
        "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the "
        "time zone of the kube-controller-manager process. The set of valid time zone names and the time zone "
        "offset is loaded from the system-wide time zone database by the API server during CronJob validation and "
        "the controller manager during execution. If no system-wide time zone database can be found a bundled "
        "version of the database is used instead. If the time zone name becomes invalid during the lifetime of a "
        "CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will "
        "create a system event with the reason UnknownTimeZone. More information can be found in "
        "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones",
    ),
    _col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply "
                               "to already started executions.  Defaults to false."),
    _col("Active", "integer", "A list of pointers to currently running jobs."),
    _col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
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


def _print_cronjob(cronjob: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(cronjob.get("spec")), _d(cronjob.get("status"))
    last = status.get("lastScheduleTime")
    suspend = spec.get("suspend")
    job_spec = _d(_d(spec.get("jobTemplate")).get("spec"))
    active = status.get("active")
    return [
        _name(cronjob),
        spec.get("schedule") or "",
        spec.get("timeZone") if isinstance(spec.get("timeZone"), str) else "<none>",
        "<unset>" if not isinstance(suspend, bool) else ("True" if suspend else "False"),
        len(active) if isinstance(active, list) else 0,
        age(last, now) if last else "<none>",
        _age(cronjob, now),
        *_container_cells(_template_spec({"spec": job_spec})),
        format_label_selector(job_spec.get("selector")),
    ]


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("batch", "jobs"): (_JOB_COLUMNS, _print_job),
    ("batch", "cronjobs"): (_CRONJOB_COLUMNS, _print_cronjob),
}
