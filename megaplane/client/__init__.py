"""megaplane.client: the one async client every component uses to talk to a Kubernetes API server.

Owns: the resource table the client addresses (`resources`), typed errors
for Kubernetes `Status` answers (`errors`), kubeconfig loading
(`kubeconfig`), the `Transport` seam (verbs on resources, in bytes) and its
HTTP/1.1 implementation (`http`), the `Client` verbs (`client`), and
client-go's informer machinery (`informer`, `cache`); `workqueue` holds the
rate-limited work queues.

Must not import megaplane.apiserver, megaplane.store, megaplane.storage or
megaplane.etcd: a component built on this package runs in its own process
against any API server. It shares only megaplane.apimachinery (errors,
selectors) and megaplane.runtime (clocks) with the server.
"""

from .cache import (
    NAMESPACE_INDEX,
    NODE_NAME_INDEX,
    DeletedFinalStateUnknown,
    Indexer,
    Lister,
    deep_copy,
    label_index,
    namespace_index,
    node_name_index,
    object_key,
    strip_managed_fields,
)
from .client import Client, ResourceClient, Watch, WatchEvent
from .errors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    ConnectionFailedError,
    ExpiredError,
    ForbiddenError,
    GoneError,
    InternalError,
    InvalidError,
    MethodNotAllowedError,
    NotFoundError,
    RequestTimeoutError,
    ServerTimeoutError,
    ServiceUnavailableError,
    StatusError,
    TooManyRequestsError,
    UnauthorizedError,
    error_from_response,
)
from .http import HTTPTransport
from .informer import Backoff, SharedInformer
from .kubeconfig import KubeConfig, KubeconfigError, KubeconfigNotFoundError, load_kubeconfig
from .resources import BUILTIN, ResourceRef, UnknownResourceError, lookup
from .transport import PATCH_CONTENT_TYPES, Transport, WatchStream

__all__ = [
    "AlreadyExistsError",
    "BUILTIN",
    "Backoff",
    "BadRequestError",
    "Client",
    "ConflictError",
    "ConnectionFailedError",
    "DeletedFinalStateUnknown",
    "ExpiredError",
    "ForbiddenError",
    "GoneError",
    "HTTPTransport",
    "Indexer",
    "InternalError",
    "InvalidError",
    "KubeConfig",
    "KubeconfigError",
    "KubeconfigNotFoundError",
    "Lister",
    "MethodNotAllowedError",
    "NAMESPACE_INDEX",
    "NODE_NAME_INDEX",
    "NotFoundError",
    "PATCH_CONTENT_TYPES",
    "RequestTimeoutError",
    "ResourceClient",
    "ResourceRef",
    "ServerTimeoutError",
    "ServiceUnavailableError",
    "SharedInformer",
    "StatusError",
    "TooManyRequestsError",
    "Transport",
    "UnauthorizedError",
    "UnknownResourceError",
    "Watch",
    "WatchEvent",
    "WatchStream",
    "error_from_response",
    "label_index",
    "load_kubeconfig",
    "lookup",
    "namespace_index",
    "node_name_index",
    "object_key",
    "deep_copy",
    "strip_managed_fields",
]
