"""Upstream's 403 for a refused request (endpoints/handlers/responsewriters.Forbidden).

`User "alice" cannot list resource "secrets" in API group "" in the
namespace "default"`, or `... at the cluster scope`, or `cannot get path
"/metrics"`, wrapped as NewForbidden wraps it: `secrets is forbidden: ...`,
`secrets "db" is forbidden: ...`, `forbidden: ...` for a non-resource path;
an authorizer's reason follows after a colon. Details name the resource
(not the subresource), its group and the object's name.
"""

from __future__ import annotations

from megaplane.apimachinery import errors

__all__ = ["forbidden_message", "resource_forbidden", "path_forbidden"]


def forbidden_message(username: str, verb: str, group: str, resource: str, subresource: str, namespace: str) -> str:
    shown = resource + "/" + subresource if subresource else resource
    if namespace:
        return (f'User "{username}" cannot {verb} resource "{shown}" in API group "{group}" in the namespace '
                f'"{namespace}"')
    return f'User "{username}" cannot {verb} resource "{shown}" in API group "{group}" at the cluster scope'


def resource_forbidden(username: str, verb: str, group: str, resource: str, subresource: str, namespace: str,
                       name: str, reason: str = "") -> errors.StatusError:
    why = forbidden_message(username, verb, group, resource, subresource, namespace)
    if reason:
        why += ": " + reason
    qualified = f"{resource}.{group}" if group else resource
    message = f'{qualified} "{name}" is forbidden: {why}' if name else f"{qualified} is forbidden: {why}"
    return errors.StatusError(403, "Forbidden", message, errors.details(name, group, resource))


def path_forbidden(username: str, verb: str, path: str, reason: str = "") -> errors.StatusError:
    why = f'User "{username}" cannot {verb} path "{path}"'
    if reason:
        why += ": " + reason
    return errors.StatusError(403, "Forbidden", "forbidden: " + why, {})
