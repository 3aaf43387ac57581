"""What the API server, the client and every component share: the Kubernetes API's vocabulary.

Status errors with upstream's codes, reasons and wording; selectors; object
metadata helpers; the resource table. Nothing here does I/O or imports
from the server, the client or storage.
"""
