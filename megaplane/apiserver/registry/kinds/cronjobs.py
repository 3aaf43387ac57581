"""CronJobs (batch/v1): what ValidateCronJob checks beyond the schema.

The schedule must parse as robfig/cron's ParseStandard does
(`megaplane.apimachinery.cron`, its messages in the 422) and may not carry
`TZ=`/`CRON_TZ=` (use `spec.timeZone`; an update may keep a TZ the object
already had); `timeZone` must be an explicit IANA zone; concurrencyPolicy
one of Allow, Forbid, Replace; startingDeadlineSeconds and the history
limits not negative; the name at most 52 characters (a Job's name adds
`-<minutes>` and its pods' names more).
"""

from __future__ import annotations

from typing import Any, Dict, List

from megaplane.apimachinery import errors
from megaplane.apimachinery.cron import CronError, load_location, parse_standard
from megaplane.apimachinery.errors import field_error
from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["CronJobStrategy", "validate_cronjob"]

#: validation.CronJobNameMaxLength: 63 minus the 11 characters of "-<minutes since epoch>".
NAME_MAX_LENGTH = 52
_POLICIES = ("Allow", "Forbid", "Replace")


class CronJobStrategy(Strategy):
    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        self._check(obj, validate_cronjob(obj, allow_tz_in_schedule=False))

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        if subresource == "status":
            return
        old_schedule = str(((old.get("spec") or {}).get("schedule")) or "")
        self._check(obj, validate_cronjob(obj, allow_tz_in_schedule="TZ" in old_schedule))

    def _check(self, obj: Dict[str, Any], causes: List[Dict[str, Any]]) -> None:
        if causes:
            r = self.resource
            raise errors.invalid(r.group, r.kind, str(obj["metadata"].get("name") or ""), causes)


def validate_cronjob(obj: Dict[str, Any], *, allow_tz_in_schedule: bool) -> List[Dict[str, Any]]:
    causes: List[Dict[str, Any]] = []
    name = str((obj.get("metadata") or {}).get("name") or "")
    if len(name) > NAME_MAX_LENGTH:
        causes.append(field_error("", "metadata.name", name, f"must be no more than {NAME_MAX_LENGTH} characters"))
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    schedule = spec.get("schedule")
    time_zone = spec.get("timeZone")
    if not schedule:
        causes.append(field_error("", "spec.schedule", "", "", "FieldValueRequired"))
    elif isinstance(schedule, str):
        try:
            parse_standard(schedule)
        except CronError as exc:
            causes.append(field_error("", "spec.schedule", schedule, str(exc)))
        if "TZ" in schedule:
            if allow_tz_in_schedule and time_zone is not None:
                causes.append(field_error("", "spec.schedule", schedule,
                                          "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
            elif not allow_tz_in_schedule:
                causes.append(field_error("", "spec.schedule", schedule,
                                          "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    if time_zone is not None:
        if not time_zone:
            causes.append(field_error("", "spec.timeZone", "", "timeZone must be nil or non-empty string"))
        elif str(time_zone).lower() == "local":
            causes.append(field_error("", "spec.timeZone", time_zone,
                                      "timeZone must be an explicit time zone as defined in "
                                      "https://www.iana.org/time-zones"))
        else:
            try:
                load_location(str(time_zone))
            except CronError as exc:
                causes.append(field_error("", "spec.timeZone", time_zone, str(exc)))
    policy = spec.get("concurrencyPolicy")
    if not policy:
        causes.append(field_error("", "spec.concurrencyPolicy", "", "", "FieldValueRequired"))
    elif policy not in _POLICIES:
        causes.append(field_error("", "spec.concurrencyPolicy", policy,
                                  'supported values: "Allow", "Forbid", "Replace"', "FieldValueNotSupported"))
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            causes.append(field_error("", f"spec.{key}", value, "must be greater than or equal to 0"))
    return causes
