"""The registry: the verbs on objects, one store per resource, callable without HTTP.

Admission, defaulting, validation and each kind's strategy are applied on
every path here; errors leave as typed `StatusError`s.
"""
