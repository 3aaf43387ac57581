"""The admission plugins by upstream name, and which run: --enable-admission-plugins / --disable-admission-plugins.

kube-apiserver runs its enabled plugins in one fixed order whatever order
the flags name them in; megaplane's known ones, in that order:
NamespaceLifecycle (always on here: the registry's own checks),
LimitRanger, ServiceAccount, Priority, DefaultTolerationSeconds,
ResourceQuota (last: it charges the quota for what the others let through).

All are on by default as upstream, except ServiceAccount: an API server
run without the serviceaccount controller (tests, benchmarks, `megaplane
apiserver` beside no controller-manager) has no `default` account, and
every pod would be refused. `megaplane up` turns it on when it runs the
serviceaccount controller itself; `--enable-admission-plugins=ServiceAccount`
turns it on anywhere.
"""

from __future__ import annotations

from typing import Any, FrozenSet, Iterable, List, Sequence

from megaplane.apimachinery.resources import lookup

__all__ = ["ADMISSION_PLUGINS", "DEFAULT_ADMISSION_PLUGINS", "admission_plugins", "install"]

#: Every plugin megaplane knows, in upstream's execution order.
ADMISSION_PLUGINS = ("NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction", "Priority",
                     "DefaultTolerationSeconds", "ResourceQuota")
DEFAULT_ADMISSION_PLUGINS = frozenset(p for p in ADMISSION_PLUGINS if p not in ("ServiceAccount", "NodeRestriction"))


def _names(text: Any, flag: str) -> List[str]:
    items = text if isinstance(text, (list, tuple, set, frozenset)) else str(text or "").split(",")
    out = [str(i).strip() for i in items if str(i).strip()]
    for name in out:
        if name not in ADMISSION_PLUGINS:
            raise ValueError(f'{flag} plugin "{name}" is unknown (known: {", ".join(ADMISSION_PLUGINS)})')
    return out


def admission_plugins(enable: Any = "", disable: Any = "", defaults: Iterable[str] = DEFAULT_ADMISSION_PLUGINS
                      ) -> FrozenSet[str]:
    """The enabled set: the defaults, plus --enable-admission-plugins, minus --disable-admission-plugins."""
    on = set(defaults) | set(_names(enable, "enable-admission-plugins"))
    off = set(_names(disable, "disable-admission-plugins"))
    both = sorted(off & set(_names(enable, "enable-admission-plugins")))
    if both:
        raise ValueError(f"[{' '.join(both)}] in enable-admission-plugins and disable-admission-plugins overlapped")
    return frozenset(on - off)


def install(registry: Any, enabled: Sequence[str]) -> None:
    """Add the enabled LimitRanger, ServiceAccount and ResourceQuota plugins to `registry.admission`.

    They go before the plugins already there (the server's Priority and DefaultTolerationSeconds), as
    upstream orders them."""
    from megaplane.apiserver.registry.limitranger import LimitRanger
    from megaplane.apiserver.registry.quota import ResourceQuotaAdmission
    from megaplane.apiserver.registry.serviceaccount import ServiceAccountAdmission

    admission = registry.admission
    first: List[Any] = []
    if "LimitRanger" in enabled:
        limitranges = lookup("", "limitranges")
        assert limitranges is not None
        limiter = LimitRanger(registry.cache_for(limitranges))
        first.append(limiter)
        admission.validating.insert(0, limiter)
    if "ServiceAccount" in enabled:
        accounts = lookup("", "serviceaccounts")
        assert accounts is not None
        sa = ServiceAccountAdmission(registry.cache_for(accounts))
        first.append(sa)
        admission.waiting.append(sa)
    admission.mutating[:0] = first
    if "ResourceQuota" in enabled:
        quotas = lookup("", "resourcequotas")
        assert quotas is not None
        admission.quota = ResourceQuotaAdmission(registry.store(quotas))
