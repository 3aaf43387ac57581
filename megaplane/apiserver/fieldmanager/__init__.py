"""Server-side apply and managed fields: structured-merge-diff and the field manager, for megaplane.

Owns field ownership: the FieldsV1 sets (fieldpath), the type model
ownership follows (typemodel: built from the vendored 1.32 OpenAPI
schemas, or any CRD schema through `type_for_schema`, deduced where there
is none), the field sets of objects and their differences (compare), the
apply merge and pruning (merge), conflicts (conflicts), and the
managedFields entries every write keeps (managedfields.FieldManager). The
registry calls it; it knows nothing of storage or HTTP.
"""

from megaplane.apiserver.fieldmanager.managedfields import (
    BEFORE_FIRST_APPLY,
    FIELD_MANAGER_MAX_LENGTH,
    LAST_APPLIED,
    FieldManager,
    default_manager,
)
from megaplane.apiserver.fieldmanager.typemodel import DEDUCED, Type, kind_type, type_for_schema

__all__ = [
    "FieldManager",
    "default_manager",
    "type_for_schema",
    "kind_type",
    "Type",
    "DEDUCED",
    "BEFORE_FIRST_APPLY",
    "LAST_APPLIED",
    "FIELD_MANAGER_MAX_LENGTH",
]
