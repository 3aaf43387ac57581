"""--enable-admission-plugins / --disable-admission-plugins: upstream names, defaults, and ServiceAccount in `up`."""

from __future__ import annotations

import pytest

from megaplane.apiserver.registry.plugins import DEFAULT_ADMISSION_PLUGINS, admission_plugins
from megaplane.cli import _admission_plugins, build_parser


def test_defaults_and_flags() -> None:
    assert DEFAULT_ADMISSION_PLUGINS == {"NamespaceLifecycle", "LimitRanger", "Priority", "DefaultTolerationSeconds",
                                         "ResourceQuota"}
    assert "ServiceAccount" in admission_plugins("ServiceAccount")
    assert admission_plugins("", "ResourceQuota,LimitRanger") == {"NamespaceLifecycle", "Priority",
                                                                  "DefaultTolerationSeconds"}
    with pytest.raises(ValueError, match='enable-admission-plugins plugin "PodSecurityPolicy" is unknown'):
        admission_plugins("PodSecurityPolicy")
    with pytest.raises(ValueError, match=r"\[ServiceAccount\] in enable-admission-plugins and disable-admission-plugins overlapped"):
        admission_plugins("ServiceAccount", "ServiceAccount")


def test_up_turns_service_account_admission_on_with_its_controller() -> None:
    parser = build_parser()
    up = parser.parse_args(["up"])
    assert "ServiceAccount" in _admission_plugins(up)  # '*' runs serviceaccount-controller in process
    alone = parser.parse_args(["up", "--controllers", "namespace"])
    assert "ServiceAccount" not in _admission_plugins(alone)
    apiserver = parser.parse_args(["apiserver", "--enable-admission-plugins", "ServiceAccount",
                                   "--disable-admission-plugins", "ResourceQuota"])
    chosen = _admission_plugins(apiserver)
    assert "ServiceAccount" in chosen and "ResourceQuota" not in chosen
