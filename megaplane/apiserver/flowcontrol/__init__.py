"""API Priority and Fairness for the API server: inflight limits, priority levels, fair queues, 429s.

Owns the admission of resource requests before their handler runs (`controller`), the bootstrap
configuration it enforces (`bootstrap`: upstream's priority levels and flow schemas, also served
read-only as flowcontrol.apiserver.k8s.io/v1 objects, see `objects`), request classification
(`classifier`), one level's shuffle-sharded fair queues (`queueset`) and its metrics (`metrics`).
It knows nothing of storage and never touches the request's body: it sees the routed request's
verb, resource, namespace and headers, and the handler as a call.
"""

from megaplane.apiserver.flowcontrol.controller import FlowControlConfig, FlowController, too_many_requests
from megaplane.apiserver.flowcontrol.metrics import FlowControlMetrics

__all__ = ["FlowControlConfig", "FlowController", "FlowControlMetrics", "too_many_requests"]
