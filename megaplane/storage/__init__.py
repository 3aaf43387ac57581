"""megaplane.storage: the API server's only door to state.

Owns the async storage seam in the role of k8s.io/apiserver's pkg/storage:
the contract (`interface`: `Storage` and its halves, `StoredObject`,
`WatchEvent`, ...), the error tree and its translation into API Status
errors, one function per verb (`errors`), the resourceVersion splice on
served bytes (`versioner`), precondition checks and TTL lease sharing used
by every backend, the value transformers that encrypt resources at rest
(`value`: --encryption-provider-config), and the backends themselves: `embedded` over the
in-process store; etcd3 (real etcd) plugs in beside it.

Imports only downward (megaplane.store, megaplane.apimachinery, megaplane.etcd's
client for etcd3); it must
not import megaplane.api or megaplane.apiserver, which build on it.
"""

from .embedded import EmbeddedStorage
from .errors import (
    ConflictError,
    CorruptObjError,
    ExpiredError,
    GroupResource,
    InternalError,
    InvalidKeyError,
    InvalidObjError,
    KeyExistsError,
    KeyNotFoundError,
    PreconditionFailedError,
    RequestTimeoutError,
    RequestTooLargeError,
    StorageError,
    TooLargeResourceVersionError,
    UnavailableError,
    interpret_create_error,
    interpret_delete_error,
    interpret_get_error,
    interpret_list_error,
    interpret_update_error,
    interpret_watch_error,
)
from .interface import (
    ADDED,
    DELETED,
    MODIFIED,
    EventType,
    ListResult,
    OnError,
    OnEvents,
    OnProgress,
    Preconditions,
    Reader,
    Storage,
    StoredObject,
    UpdateFunc,
    ValidateDeletion,
    Value,
    Watchable,
    WatchEvent,
    WatchHandle,
    Writer,
)
from .keys import prefix_end
from .leases import LeaseManager
from .preconditions import check_preconditions
from .stream import Progress, WatchStream
from .versioner import set_resource_version

__all__ = [
    "Storage",
    "Reader",
    "Writer",
    "Watchable",
    "WatchHandle",
    "StoredObject",
    "ListResult",
    "WatchEvent",
    "EventType",
    "ADDED",
    "MODIFIED",
    "DELETED",
    "Preconditions",
    "Value",
    "UpdateFunc",
    "ValidateDeletion",
    "OnEvents",
    "OnError",
    "OnProgress",
    "EmbeddedStorage",
    "WatchStream",
    "Progress",
    "LeaseManager",
    "check_preconditions",
    "prefix_end",
    "set_resource_version",
    "GroupResource",
    "StorageError",
    "KeyNotFoundError",
    "KeyExistsError",
    "ConflictError",
    "InvalidObjError",
    "PreconditionFailedError",
    "UnavailableError",
    "RequestTimeoutError",
    "CorruptObjError",
    "InvalidKeyError",
    "ExpiredError",
    "TooLargeResourceVersionError",
    "RequestTooLargeError",
    "InternalError",
    "interpret_get_error",
    "interpret_list_error",
    "interpret_create_error",
    "interpret_update_error",
    "interpret_delete_error",
    "interpret_watch_error",
]
