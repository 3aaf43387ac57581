"""Audit: what each request did, by whom, recorded as audit.k8s.io/v1 Events at the policy's level.

kube-apiserver's --audit-policy-file and log backend (--audit-log-path and
the rotation flags): `policy` decides each request's level and omitted
stages, `filter` wraps the server's handler and builds the events,
`backend` writes them as JSON lines from a writer thread behind a bounded
queue (a slow disk never blocks a request; what does not fit is dropped
and counted). Without both a policy file and a log path nothing is
wrapped: no per-request cost.
"""
