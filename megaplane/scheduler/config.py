"""`--config`: a `kubescheduler.config.k8s.io/v1` KubeSchedulerConfiguration, decoded, defaulted, validated.

As kube-scheduler v1.32 (`cmd/kube-scheduler/app/options`, `pkg/scheduler/apis/config/v1` defaults,
`.../validation`, the framework's plugin set-up):

1. Decoding is strict (YAML or JSON): an unknown field is `strict decoding error: unknown field "..."`,
   another apiVersion is not registered, a value of the wrong type does not unmarshal.
2. Defaulting as `SetDefaults_KubeSchedulerConfiguration`: one profile `default-scheduler` when there is
   none; each profile's plugins merged over the default multiPoint set (`mergePluginSet`: `disabled`
   drops defaults, `'*'` all of them, an enabled default is re-configured in place, others appended);
   plugin args defaulted; leader election on, 15s / 10s / 2s, lease kube-system/kube-scheduler;
   qps 50, burst 100; backoff 1 s .. 10 s.
3. Validation (`ValidateKubeSchedulerConfiguration` and the plugin args' validators) reports every error
   at once with field paths, as an aggregate `[a, b]`.
4. Building the profiles runs the framework's checks (`FilterPlugin "X" does not exist`, a plugin at an
   extension point it does not implement, one queue sort, a binder), multiPoint expansion (a plugin
   disabled at one point stays at the others; a point's own list overrides multiPoint's) and the score
   weights (a point's own weight first, 0 meaning 1), and yields `profile.Profile`s.

Any failure is a `ConfigError` whose message is upstream's; `megaplane scheduler` prints it and exits
with status 1, as kube-scheduler does, before it talks to any API server.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .plugins import MAX_NODE_SCORE
from .podspec import NodeSelectorTerm, Requirement, SpreadConstraint
from .profile import (
    CONSTANT_SCORE_PLUGINS,
    DEFAULT_PLUGINS,
    DEFAULT_RESOURCES,
    EXTENSION_POINTS,
    FILTER_PLUGINS,
    MAX_CUSTOM_PRIORITY_SCORE,
    PLUGIN_EXTENSIONS,
    Profile,
    ScoringStrategy,
)
from .topologyspread import SYSTEM_DEFAULT_CONSTRAINTS

__all__ = ["ConfigError", "SchedulerConfiguration", "LeaderElection", "ClientConnection", "load_file", "load",
           "parse"]

API_VERSION = "kubescheduler.config.k8s.io/v1"
KIND = "KubeSchedulerConfiguration"
DEFAULT_SCHEDULER_NAME = "default-scheduler"
DEFAULT_PERCENTAGE_OF_NODES_TO_SCORE = 0
#: framework.MaxTotalScore (math.MaxInt64).
MAX_TOTAL_SCORE = 2 ** 63 - 1
#: Plugins removed from v1 (isPluginInvalid).
INVALID_PLUGINS = ("AzureDiskLimits", "CinderLimits", "EBSLimits", "GCEPDLimits")
#: getExtensionPoints' order: the first extension point a misnamed multiPoint plugin is reported at.
_FRAMEWORK_ORDER = ("preFilter", "filter", "postFilter", "reserve", "preScore", "score", "preBind", "bind",
                    "postBind", "permit", "preEnqueue", "queueSort")
_TYPE_NAMES = {"preEnqueue": "PreEnqueuePlugin", "queueSort": "QueueSortPlugin", "preFilter": "PreFilterPlugin",
               "filter": "FilterPlugin", "postFilter": "PostFilterPlugin", "preScore": "PreScorePlugin",
               "score": "ScorePlugin", "reserve": "ReservePlugin", "permit": "PermitPlugin",
               "preBind": "PreBindPlugin", "bind": "BindPlugin", "postBind": "PostBindPlugin"}
_SCORING_TYPES = ("LeastAllocated", "MostAllocated", "RequestedToCapacityRatio")


class ConfigError(ValueError):
    """The configuration cannot be used; str() is upstream's message. kube-scheduler exits 1."""

    exit_code = 1


@dataclass(frozen=True)
class LeaderElection:
    """componentbaseconfig.LeaderElectionConfiguration (durations in seconds)."""

    leader_elect: bool = True
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    resource_lock: str = "leases"
    resource_name: str = "kube-scheduler"
    resource_namespace: str = "kube-system"


@dataclass(frozen=True)
class ClientConnection:
    kubeconfig: str = ""
    qps: float = 50.0
    burst: int = 100
    content_type: str = "application/vnd.kubernetes.protobuf"


@dataclass(frozen=True)
class SchedulerConfiguration:
    profiles: Tuple[Profile, ...]
    percentage_of_nodes_to_score: int = DEFAULT_PERCENTAGE_OF_NODES_TO_SCORE
    pod_initial_backoff_seconds: int = 1
    pod_max_backoff_seconds: int = 10
    parallelism: int = 16
    leader_election: LeaderElection = LeaderElection()
    client_connection: ClientConnection = ClientConnection()
    #: Each profile's plugins after defaulting: extension point -> enabled (name, weight) in order.
    plugins: Tuple[Dict[str, List[Tuple[str, int]]], ...] = field(default=(), compare=False)

    @property
    def scheduler_names(self) -> Tuple[str, ...]:
        return tuple(p.name for p in self.profiles)


# -- decoding ----------------------------------------------------------------------------------------

_GO_TYPES = {bool: "bool", int: "int32", float: "float32", str: "string", list: "array", dict: "object"}


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


class _Decoder:
    """Strict, typed access to the decoded document; the first problem raises, as the codec stops there."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def unknown(self, obj: Mapping[str, Any], path: str, known: Sequence[str]) -> None:
        for key in obj:
            if key not in known:
                where = f"{path}.{key}" if path else str(key)
                raise ConfigError(f"{self.prefix}strict decoding error: unknown field \"{where}\"")

    def get(self, obj: Mapping[str, Any], key: str, want: type, go_type: str, struct: str) -> Any:
        v = obj.get(key)
        if v is None:
            return None
        ok = isinstance(v, want) and not (want in (int, float) and isinstance(v, bool))
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if want is int and isinstance(v, float) and v.is_integer():
            v, ok = int(v), True
        if not ok:
            raise ConfigError(f"{self.prefix}json: cannot unmarshal {_json_kind(v)} into Go struct field "
                              f"{struct}.{key} of type {go_type}")
        return v

    def obj(self, obj: Mapping[str, Any], key: str, struct: str) -> Dict[str, Any]:
        return dict(self.get(obj, key, dict, "object", struct) or {})

    def items(self, obj: Mapping[str, Any], key: str, struct: str) -> List[Any]:
        return list(self.get(obj, key, list, "array", struct) or [])


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """time.ParseDuration, in seconds (metav1.Duration's JSON form)."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None:
            raise ConfigError(f"time: invalid duration \"{text}\"")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not body:
        raise ConfigError(f"time: invalid duration \"{text}\"")
    return sign * total


def _go_duration(seconds: float) -> str:
    """time.Duration.String() for the durations validation messages quote."""
    if seconds == 0:
        return "0s"
    out = f"{seconds:g}s" if abs(seconds) < 60 else ""
    if not out:
        h, rest = divmod(abs(seconds), 3600)
        m, sec = divmod(rest, 60)
        out = ("-" if seconds < 0 else "") + (f"{int(h)}h" if h else "") + f"{int(m)}m{sec:g}s"
    return out


def load_file(path: str, leader_election: Optional[Mapping[str, Any]] = None) -> SchedulerConfiguration:
    """LoadConfigFromFile, defaults, validation and the profiles' set-up; ConfigError for any problem.

    `leader_election`: LeaderElection fields from the --leader-elect* flags given on the command line,
    which win over the file before validation (ApplyLeaderElectionTo).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
    return load(data, leader_election)


def load(data: bytes | str, leader_election: Optional[Mapping[str, Any]] = None) -> SchedulerConfiguration:
    import yaml

    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        # JSON as JSON (the universal decoder sniffs it; YAML would refuse tab indentation), else YAML.
        doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"couldn't get version/kind; json parse error: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"error converting YAML to JSON: yaml: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"couldn't get version/kind; json parse error: json: cannot unmarshal "
                          f"{_json_kind(doc)} into Go value of type struct {{ APIVersion string "
                          f"\"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}")
    return parse(doc, text, leader_election)


_TOP_FIELDS = ("apiVersion", "kind", "parallelism", "leaderElection", "clientConnection", "healthzBindAddress",
               "metricsBindAddress", "enableProfiling", "enableContentionProfiling", "percentageOfNodesToScore",
               "podInitialBackoffSeconds", "podMaxBackoffSeconds", "profiles", "extenders",
               "delayCacheUntilActive")
_LEADER_FIELDS = ("leaderElect", "leaseDuration", "renewDeadline", "retryPeriod", "resourceLock", "resourceName",
                  "resourceNamespace")
_CLIENT_FIELDS = ("kubeconfig", "acceptContentTypes", "contentType", "qps", "burst")
_PROFILE_FIELDS = ("schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig")
_PLUGINS_FIELDS = ("multiPoint",) + EXTENSION_POINTS
_ARGS_FIELDS: Dict[str, Tuple[str, ...]] = {
    "NodeResourcesFit": ("ignoredResources", "ignoredResourceGroups", "scoringStrategy"),
    "PodTopologySpread": ("defaultConstraints", "defaultingType"),
    "InterPodAffinity": ("hardPodAffinityWeight", "ignorePreferredTermsOfExistingPods"),
    "NodeAffinity": ("addedAffinity",),
    "DefaultPreemption": ("minCandidateNodesPercentage", "minCandidateNodesAbsolute"),
    "NodeResourcesBalancedAllocation": ("resources",),
}


def parse(doc: Mapping[str, Any], text: str = "",
          leader_election: Optional[Mapping[str, Any]] = None) -> SchedulerConfiguration:
    """A decoded document to a SchedulerConfiguration (see the module docstring); ConfigError."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not kind:
        raise ConfigError(f"Object 'Kind' is missing in '{text.strip() or json.dumps(doc)}'")
    if api_version != API_VERSION or kind != KIND:
        raise ConfigError(f"no kind \"{kind}\" is registered for version \"{api_version}\" in scheme "
                          f"\"pkg/scheduler/apis/config/scheme/scheme.go:30\"")
    d = _Decoder()
    d.unknown(doc, "", _TOP_FIELDS)
    s = KIND
    if d.items(doc, "extenders", s):
        raise ConfigError("megaplane: extenders are not supported")
    parallelism = d.get(doc, "parallelism", int, "int32", s)
    percentage = d.get(doc, "percentageOfNodesToScore", int, "int32", s)
    initial = d.get(doc, "podInitialBackoffSeconds", int, "int64", s)
    maximum = d.get(doc, "podMaxBackoffSeconds", int, "int64", s)
    leader = _leader_election(d, d.obj(doc, "leaderElection", s))
    if leader_election:
        leader = dataclasses.replace(leader, **leader_election)
    client = _client_connection(d, d.obj(doc, "clientConnection", s))
    raw_profiles = d.items(doc, "profiles", s)
    if not raw_profiles:
        raw_profiles = [{}]
    profiles = []
    for i, raw in enumerate(raw_profiles):
        if not isinstance(raw, dict):
            raise ConfigError(f"json: cannot unmarshal {_json_kind(raw)} into Go struct field "
                              f"KubeSchedulerConfiguration.profiles of type v1.KubeSchedulerProfile")
        profiles.append(_decode_profile(d, raw, f"profiles[{i}]", single=len(raw_profiles) == 1))
    cfg = _Decoded(parallelism=16 if parallelism is None else parallelism,
                   percentage=DEFAULT_PERCENTAGE_OF_NODES_TO_SCORE if percentage is None else percentage,
                   initial=1 if initial is None else initial, maximum=10 if maximum is None else maximum,
                   leader=leader, client=client, profiles=profiles)
    errors = _validate(cfg)
    if errors:
        raise ConfigError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
    built = []
    for p in profiles:
        try:
            built.append(_build_profile(p))
        except ConfigError as exc:
            raise ConfigError(f"initializing profiles: creating profile for scheduler name {p.name}: {exc}") from None
    return SchedulerConfiguration(
        profiles=tuple(b for b, _ in built), percentage_of_nodes_to_score=cfg.percentage,
        pod_initial_backoff_seconds=cfg.initial, pod_max_backoff_seconds=cfg.maximum, parallelism=cfg.parallelism,
        leader_election=leader, client_connection=client, plugins=tuple(points for _, points in built))


def _duration(d: _Decoder, obj: Mapping[str, Any], key: str, default: float) -> float:
    v = d.get(obj, key, str, "v1.Duration", "LeaderElectionConfiguration")
    return default if v is None else parse_go_duration(v)


def _leader_election(d: _Decoder, obj: Mapping[str, Any]) -> LeaderElection:
    d.unknown(obj, "leaderElection", _LEADER_FIELDS)
    s = "LeaderElectionConfiguration"
    elect = d.get(obj, "leaderElect", bool, "bool", s)
    return LeaderElection(
        leader_elect=True if elect is None else elect,
        lease_duration=_duration(d, obj, "leaseDuration", 15.0),
        renew_deadline=_duration(d, obj, "renewDeadline", 10.0),
        retry_period=_duration(d, obj, "retryPeriod", 2.0),
        resource_lock=d.get(obj, "resourceLock", str, "string", s) or "leases",
        resource_name=d.get(obj, "resourceName", str, "string", s) or "kube-scheduler",
        resource_namespace=d.get(obj, "resourceNamespace", str, "string", s) or "kube-system")


def _client_connection(d: _Decoder, obj: Mapping[str, Any]) -> ClientConnection:
    d.unknown(obj, "clientConnection", _CLIENT_FIELDS)
    s = "ClientConnectionConfiguration"
    qps = d.get(obj, "qps", float, "float32", s)
    burst = d.get(obj, "burst", int, "int32", s)
    return ClientConnection(kubeconfig=d.get(obj, "kubeconfig", str, "string", s) or "",
                            qps=50.0 if not qps else float(qps), burst=100 if not burst else burst,
                            content_type=d.get(obj, "contentType", str, "string", s) or
                            "application/vnd.kubernetes.protobuf")


# -- profiles: decoding and defaulting -----------------------------------------------------------------

@dataclass
class _PluginSet:
    enabled: List[Tuple[str, int]] = field(default_factory=list)
    disabled: List[str] = field(default_factory=list)


@dataclass
class _ProfileDoc:
    name: str
    percentage: Optional[int]
    #: Extension point (and "multiPoint") -> the merged set.
    plugins: Dict[str, _PluginSet]
    #: (name, args) in order; args defaulted; None for a plugin without args.
    plugin_config: List[Tuple[str, Any]]
    path: str


@dataclass
class _Decoded:
    parallelism: int
    percentage: int
    initial: int
    maximum: int
    leader: LeaderElection
    client: ClientConnection
    profiles: List[_ProfileDoc]


def _plugin_set(d: _Decoder, obj: Mapping[str, Any], path: str) -> _PluginSet:
    d.unknown(obj, path, ("enabled", "disabled"))
    out = _PluginSet()
    for key in ("enabled", "disabled"):
        for j, p in enumerate(d.items(obj, key, "PluginSet")):
            if not isinstance(p, dict):
                raise ConfigError(f"json: cannot unmarshal {_json_kind(p)} into Go struct field "
                                  f"PluginSet.{key} of type v1.Plugin")
            d.unknown(p, f"{path}.{key}[{j}]", ("name", "weight"))
            name = d.get(p, "name", str, "string", "Plugin") or ""
            weight = d.get(p, "weight", int, "int32", "Plugin")
            if key == "enabled":
                out.enabled.append((name, weight or 0))
            else:
                out.disabled.append(name)
    return out


def _merge(default: _PluginSet, custom: _PluginSet) -> _PluginSet:
    """mergePluginSet: the defaults minus the disabled ones (all with '*'), re-configured in place; the other
    custom plugins appended."""
    disabled = set(custom.disabled)
    by_name = {name: (i, (name, w)) for i, (name, w) in enumerate(custom.enabled)}
    replaced = set()
    enabled: List[Tuple[str, int]] = []
    if "*" not in disabled:
        for plugin in default.enabled:
            if plugin[0] in disabled:
                continue
            if plugin[0] in by_name:
                index, plugin = by_name[plugin[0]]
                replaced.add(index)
            enabled.append(plugin)
    enabled += [p for i, p in enumerate(custom.enabled) if i not in replaced]
    return _PluginSet(enabled, list(custom.disabled))


def _decode_profile(d: _Decoder, raw: Mapping[str, Any], path: str, single: bool) -> _ProfileDoc:
    d.unknown(raw, path, _PROFILE_FIELDS)
    s = "KubeSchedulerProfile"
    name = d.get(raw, "schedulerName", str, "string", s)
    if name is None and single:
        name = DEFAULT_SCHEDULER_NAME
    plugins_raw = d.obj(raw, "plugins", s)
    d.unknown(plugins_raw, f"{path}.plugins", _PLUGINS_FIELDS)
    plugins: Dict[str, _PluginSet] = {}
    for point in _PLUGINS_FIELDS:
        custom = _plugin_set(d, d.obj(plugins_raw, point, "Plugins"), f"{path}.plugins.{point}")
        default = _PluginSet(list(DEFAULT_PLUGINS)) if point == "multiPoint" else _PluginSet()
        plugins[point] = _merge(default, custom)
    config: List[Tuple[str, Any]] = []
    seen = set()
    for j, entry in enumerate(d.items(raw, "pluginConfig", s)):
        if not isinstance(entry, dict):
            raise ConfigError(f"json: cannot unmarshal {_json_kind(entry)} into Go struct field "
                              f"KubeSchedulerProfile.pluginConfig of type v1.PluginConfig")
        d.unknown(entry, f"{path}.pluginConfig[{j}]", ("name", "args"))
        pname = d.get(entry, "name", str, "string", "PluginConfig") or ""
        args = d.obj(entry, "args", "PluginConfig")
        config.append((pname, _decode_args(pname, args)))
        seen.add(pname)
    # Default args for the enabled plugins that have an args type and no explicit config.
    names = sorted({n for ps in plugins.values() for n, _ in ps.enabled})
    for pname in names:
        if pname not in seen and pname in _ARGS_FIELDS:
            config.append((pname, _decode_args(pname, {})))
    return _ProfileDoc(name=name or "", percentage=d.get(raw, "percentageOfNodesToScore", int, "int32", s),
                       plugins=plugins, plugin_config=config, path=path)


def _decode_args(name: str, args: Dict[str, Any]) -> Any:
    """An args object strictly decoded as `<name>Args` and defaulted (None: the plugin takes no args)."""
    known = _ARGS_FIELDS.get(name)
    if known is None:
        return None
    d = _Decoder(f"strict decoding error: decoding args for plugin {name}: ")
    kind = args.pop("kind", None)
    version = args.pop("apiVersion", None)
    if (kind is not None and kind != f"{name}Args") or (version is not None and version != API_VERSION):
        raise ConfigError(f"decoding args for plugin {name}: args are {version}/{kind}, not {API_VERSION}/{name}Args")
    d.unknown(args, "", known)
    s = f"{name}Args"
    if name == "NodeResourcesFit":
        strategy = d.obj(args, "scoringStrategy", s)
        d.unknown(strategy, "scoringStrategy", ("type", "resources", "requestedToCapacityRatio"))
        resources = []
        for j, r in enumerate(d.items(strategy, "resources", "ScoringStrategy")):
            d.unknown(r, f"scoringStrategy.resources[{j}]", ("name", "weight"))
            resources.append((d.get(r, "name", str, "string", "ResourceSpec") or "",
                              d.get(r, "weight", int, "int64", "ResourceSpec") or 1))
        ratio = d.get(strategy, "requestedToCapacityRatio", dict, "object", "ScoringStrategy")
        shape: Optional[List[Tuple[int, int]]] = None
        if ratio is not None:
            d.unknown(ratio, "scoringStrategy.requestedToCapacityRatio", ("shape",))
            shape = []
            for j, pt in enumerate(d.items(ratio, "shape", "RequestedToCapacityRatioParam")):
                d.unknown(pt, f"scoringStrategy.requestedToCapacityRatio.shape[{j}]", ("utilization", "score"))
                shape.append((d.get(pt, "utilization", int, "int32", "UtilizationShapePoint") or 0,
                              d.get(pt, "score", int, "int32", "UtilizationShapePoint") or 0))
        # Only an absent scoringStrategy is defaulted (LeastAllocated); a given one keeps its type, "" included.
        kind = (d.get(strategy, "type", str, "string", "ScoringStrategy") or "") if "scoringStrategy" in args \
            else "LeastAllocated"
        return {"type": kind,
                "resources": resources or list(DEFAULT_RESOURCES), "shape": shape,
                "ignored": d.items(args, "ignoredResources", s) + d.items(args, "ignoredResourceGroups", s)}
    if name == "PodTopologySpread":
        constraints = []
        for j, c in enumerate(d.items(args, "defaultConstraints", s)):
            d.unknown(c, f"defaultConstraints[{j}]", ("maxSkew", "topologyKey", "whenUnsatisfiable", "labelSelector",
                                                      "minDomains", "nodeAffinityPolicy", "nodeTaintsPolicy",
                                                      "matchLabelKeys"))
            constraints.append(c)
        return {"defaultingType": d.get(args, "defaultingType", str, "string", s) or "System",
                "defaultConstraints": constraints}
    if name == "InterPodAffinity":
        w = d.get(args, "hardPodAffinityWeight", int, "int32", s)
        return {"hardPodAffinityWeight": 1 if w is None else w,
                "ignorePreferredTermsOfExistingPods": bool(d.get(args, "ignorePreferredTermsOfExistingPods", bool,
                                                                 "bool", s))}
    if name == "NodeAffinity":
        return {"addedAffinity": d.get(args, "addedAffinity", dict, "object", s)}
    if name == "DefaultPreemption":
        pct = d.get(args, "minCandidateNodesPercentage", int, "int32", s)
        absolute = d.get(args, "minCandidateNodesAbsolute", int, "int32", s)
        return {"minCandidateNodesPercentage": 10 if pct is None else pct,
                "minCandidateNodesAbsolute": 100 if absolute is None else absolute}
    resources = []
    for j, r in enumerate(d.items(args, "resources", s)):
        d.unknown(r, f"resources[{j}]", ("name", "weight"))
        resources.append((d.get(r, "name", str, "string", "ResourceSpec") or "",
                          d.get(r, "weight", int, "int64", "ResourceSpec") or 1))
    return {"resources": resources or list(DEFAULT_RESOURCES)}


# -- validation ---------------------------------------------------------------------------------------

def _value(v: Any) -> str:
    """How field.Error prints a bad value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return f"{v:g}" if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return json.dumps(v)
    return json.dumps(v, separators=(",", ":"))


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_value(value)}: {detail}"


def _required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def _not_supported(path: str, value: Any, supported: Sequence[str]) -> str:
    return f"{path}: Unsupported value: {_value(value)}: supported values: " + ", ".join(f'"{s}"' for s in supported)


_LABEL_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                         r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def _validate(cfg: _Decoded) -> List[str]:
    errs: List[str] = []
    if cfg.client.burst < 0:
        errs.append(_invalid("clientConnection.burst", cfg.client.burst, "must be non-negative"))
    le = cfg.leader
    if le.leader_elect:
        for key, v in (("leaseDuration", le.lease_duration), ("renewDeadline", le.renew_deadline),
                       ("retryPeriod", le.retry_period)):
            if v <= 0:
                errs.append(_invalid(f"leaderElection.{key}", _go_duration(v), "must be greater than zero"))
        if le.lease_duration <= le.renew_deadline:
            errs.append(_invalid("leaderElection.leaseDuration", _go_duration(le.renew_deadline),
                                 "LeaseDuration must be greater than RenewDeadline"))
        if le.resource_lock != "leases":
            errs.append(_invalid("leaderElection.resourceLock", le.resource_lock, 'resourceLock value must be "leases"'))
    if cfg.parallelism <= 0:
        errs.append(_invalid("parallelism", cfg.parallelism, "should be an integer value greater than zero"))
    seen: Dict[str, int] = {}
    for i, p in enumerate(cfg.profiles):
        errs += _validate_profile(p)
        if p.name in seen:
            errs.append(f"profiles[{i}].schedulerName: Duplicate value: {{}}")
        seen[p.name] = i
    canon = cfg.profiles[0].plugins["queueSort"]
    for i, p in enumerate(cfg.profiles[1:], start=1):
        if p.plugins["queueSort"] != canon:
            errs.append(_invalid(f"profiles[{i}].plugins.queueSort",
                                 {"Enabled": [{"Name": n, "Weight": w} for n, w in p.plugins["queueSort"].enabled],
                                  "Disabled": [{"Name": n, "Weight": 0} for n in p.plugins["queueSort"].disabled]},
                                 "must be the same for all profiles"))
    if not 0 <= cfg.percentage <= 100:
        errs.append(_invalid("percentageOfNodesToScore", cfg.percentage, "not in valid range [0-100]"))
    if cfg.initial <= 0:
        errs.append(_invalid("podInitialBackoffSeconds", cfg.initial, "must be greater than 0"))
    if cfg.maximum < cfg.initial:
        errs.append(_invalid("podMaxBackoffSeconds", cfg.maximum, "must be greater than or equal to "
                             "PodInitialBackoffSeconds"))
    return errs


def _validate_profile(p: _ProfileDoc) -> List[str]:
    errs: List[str] = []
    if not p.name:
        errs.append(_required(f"{p.path}.schedulerName"))
    if p.percentage is not None and not 0 <= p.percentage <= 100:
        errs.append(_invalid(f"{p.path}.percentageOfNodesToScore", p.percentage, "not in valid range [0-100]"))
    for point in EXTENSION_POINTS:
        for j, (name, _) in enumerate(p.plugins[point].enabled):
            if name in INVALID_PLUGINS:
                errs.append(_invalid(f"{p.path}.plugins.{point}.enabled[{j}]", name,
                                     f'was invalid in version "{API_VERSION}" (KubeSchedulerConfiguration is version '
                                     f'"{API_VERSION}")'))
    seen = set()
    for j, (name, args) in enumerate(p.plugin_config):
        path = f"{p.path}.pluginConfig[{j}]"
        if name in seen:
            errs.append(f"{path}: Duplicate value: {_value(name)}")
        seen.add(name)
        if name in INVALID_PLUGINS:
            errs.append(_invalid(path, name, f'was invalid in version "{API_VERSION}" (KubeSchedulerConfiguration is '
                                             f'version "{API_VERSION}")'))
        elif args is not None and name != "NodeResourcesFit":  # upstream validates Fit's args in the plugin
            errs += _validate_args(f"{path}.args", name, args)
    return errs


def _validate_args(path: str, name: str, args: Dict[str, Any]) -> List[str]:
    errs: List[str] = []
    if name == "InterPodAffinity":
        w = args["hardPodAffinityWeight"]
        if not 0 <= w <= 100:
            errs.append(_invalid(f"{path}.hardPodAffinityWeight", w, "not in valid range [0, 100]"))
    elif name == "DefaultPreemption":
        pct, absolute = args["minCandidateNodesPercentage"], args["minCandidateNodesAbsolute"]
        if not 0 <= pct <= 100:
            errs.append(_invalid(f"{path}.minCandidateNodesPercentage", pct, "not in valid range [0, 100]"))
        if absolute < 0:
            errs.append(_invalid(f"{path}.minCandidateNodesAbsolute", absolute, "not in valid range [0, inf)"))
        if pct == 0 and absolute == 0:
            errs.append(_invalid(f"{path}.minCandidateNodesPercentage", pct,
                                 "cannot be zero at the same time as minCandidateNodesAbsolute"))
            errs.append(_invalid(f"{path}.minCandidateNodesAbsolute", absolute,
                                 "cannot be zero at the same time as minCandidateNodesPercentage"))
    elif name == "NodeResourcesBalancedAllocation":
        seen = set()
        for i, (rname, weight) in enumerate(args["resources"]):
            if rname in seen:
                errs.append(f"{path}.resources[{i}].name: Duplicate value: {_value(rname)}")
            seen.add(rname)
            if weight != 1:
                errs.append(_invalid(f"{path}.resources[{i}].weight", weight, "must be 1"))
    elif name == "PodTopologySpread":
        errs += _validate_spread(path, args)
    elif name == "NodeAffinity":
        errs += _validate_added_affinity(path, args["addedAffinity"])
    return errs


def _validate_spread(path: str, args: Dict[str, Any]) -> List[str]:
    errs: List[str] = []
    kind, constraints = args["defaultingType"], args["defaultConstraints"]
    if kind not in ("System", "List"):
        errs.append(_not_supported(f"{path}.defaultingType", kind, ("System", "List")))
    elif kind == "System" and constraints:
        errs.append(_invalid(f"{path}.defaultingType", kind, "when .defaultConstraints are not empty"))
    for i, c in enumerate(constraints):
        p = f"{path}.defaultConstraints[{i}]"
        skew = c.get("maxSkew") or 0
        if not isinstance(skew, int) or skew <= 0:
            errs.append(_invalid(f"{p}.maxSkew", skew, "not in valid range (0, inf)"))
        key = str(c.get("topologyKey") or "")
        if not key:
            errs.append(_required(f"{p}.topologyKey", "can not be empty"))
        elif not _LABEL_NAME.match(key) or len(key.split("/")[-1]) > 63:
            errs.append(_invalid(f"{p}.topologyKey", key, "name part must consist of alphanumeric characters, '-', "
                                 "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  "
                                 "or 'my.name',  or '123-abc', regex used for validation is "
                                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"))
        action = str(c.get("whenUnsatisfiable") or "")
        if not action:
            errs.append(_required(f"{p}.whenUnsatisfiable", "can not be empty"))
        elif action not in ("DoNotSchedule", "ScheduleAnyway"):
            errs.append(_not_supported(f"{p}.whenUnsatisfiable", action, ("DoNotSchedule", "ScheduleAnyway")))
        if c.get("labelSelector") is not None:
            errs.append(f"{p}.labelSelector: Forbidden: constraint must not define a selector, as they deduced for "
                        "each pod")
        for j, other in enumerate(constraints[:i]):
            if other.get("topologyKey") == c.get("topologyKey") and \
                    other.get("whenUnsatisfiable") == c.get("whenUnsatisfiable"):
                errs.append(f"{path}.defaultConstraints[{i}]: Duplicate value: {_value('{' + key + ', ' + action + '}')}")
                break
    return errs


_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


def _validate_requirements(path: str, reqs: Any, fields: bool) -> List[str]:
    errs: List[str] = []
    for k, r in enumerate(reqs or ()):
        p = f"{path}[{k}]"
        op, values, key = str(r.get("operator") or ""), list(r.get("values") or ()), str(r.get("key") or "")
        if fields:
            if key != "metadata.name":
                errs.append(_invalid(f"{p}.key", key, "not a valid field selector key"))
            if op not in ("In", "NotIn"):
                errs.append(_invalid(f"{p}.operator", op, "not a valid selector operator"))
            elif len(values) != 1:
                errs.append(_required(f"{p}.values", "must be only one value when `operator` is 'In' or "
                                                     "'NotIn' for node field selector"))
            continue
        if op not in _OPERATORS:
            errs.append(_invalid(f"{p}.operator", op, "not a valid selector operator"))
        elif op in ("In", "NotIn") and not values:
            errs.append(_required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            errs.append(f"{p}.values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        elif op in ("Gt", "Lt") and len(values) != 1:
            errs.append(_required(f"{p}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'"))
        if not key or not _LABEL_NAME.match(key):
            errs.append(_invalid(f"{p}.key", key, "name part must consist of alphanumeric characters, '-', '_' or "
                                 "'.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
                                 "'my.name',  or '123-abc', regex used for validation is "
                                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"))
    return errs


def _validate_added_affinity(path: str, affinity: Optional[Mapping[str, Any]]) -> List[str]:
    if not affinity:
        return []
    errs: List[str] = []
    base = f"{path}.addedAffinity"
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        for i, term in enumerate(required.get("nodeSelectorTerms") or ()):
            p = f"{base}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]"
            errs += _validate_requirements(f"{p}.matchExpressions", term.get("matchExpressions"), False)
            errs += _validate_requirements(f"{p}.matchFields", term.get("matchFields"), True)
    for i, w in enumerate(affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()):
        p = f"{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference"
        term = w.get("preference") or {}
        errs += _validate_requirements(f"{p}.matchExpressions", term.get("matchExpressions"), False)
        errs += _validate_requirements(f"{p}.matchFields", term.get("matchFields"), True)
    return errs


def _validate_fit_args(args: Dict[str, Any]) -> List[str]:
    """ValidateNodeResourcesFitArgs with a nil path, as NewFit calls it."""
    errs: List[str] = []
    kind, shape = args["type"], args["shape"]
    if kind not in _SCORING_TYPES:
        errs.append(_not_supported("scoringStrategy.type", kind, _SCORING_TYPES))
    for i, (rname, weight) in enumerate(args["resources"]):
        if weight <= 0 or weight > 100:
            errs.append(_invalid(f"scoringStrategy.resources[{i}].weight", weight,
                                 f"resource weight of {rname} not in valid range (0, 100]"))
    if kind == "RequestedToCapacityRatio":
        if shape is None:
            errs.append(_required("scoringStrategy.requestedToCapacityRatio",
                                  "must be specified when type is RequestedToCapacityRatio"))
        elif not shape:
            errs.append(_required("scoringStrategy.requestedToCapacityRatio.shape",
                                  "at least one point must be specified"))
        else:
            p = "scoringStrategy.requestedToCapacityRatio.shape"
            for i in range(1, len(shape)):
                if shape[i - 1][0] >= shape[i][0]:
                    errs.append(_invalid(f"{p}[{i}].utilization", shape[i][0], "values must be sorted in increasing order"))
                    break
            for i, (util, score) in enumerate(shape):
                if not 0 <= util <= 100:
                    errs.append(_invalid(f"{p}[{i}].utilization", util, "not in valid range [0, 100]"))
                if not 0 <= score <= MAX_CUSTOM_PRIORITY_SCORE:
                    errs.append(_invalid(f"{p}[{i}].score", score, f"not in valid range [0, {MAX_CUSTOM_PRIORITY_SCORE}]"))
    elif shape is not None:
        errs.append("scoringStrategy.requestedToCapacityRatio: Forbidden: must be nil when type is not "
                    "RequestedToCapacityRatio")
    return errs


# -- the framework: plugin lists per extension point, weights, args -----------------------------------

def _expand(p: _ProfileDoc) -> Dict[str, List[str]]:
    """updatePluginList per extension point, then expandMultiPointPlugins: the enabled plugins per point."""
    out: Dict[str, List[str]] = {}
    for point in _FRAMEWORK_ORDER:
        type_name = _TYPE_NAMES[point]
        names: List[str] = []
        for name, _ in p.plugins[point].enabled:
            if name not in PLUGIN_EXTENSIONS:
                raise ConfigError(f"{type_name} {json.dumps(name)} does not exist")
            if point not in PLUGIN_EXTENSIONS[name]:
                raise ConfigError(f"plugin {json.dumps(name)} does not extend {type_name} plugin")
            if name in names:
                raise ConfigError(f"plugin {json.dumps(name)} already registered as {json.dumps(type_name)}")
            names.append(name)
        out[point] = names
    multi = p.plugins["multiPoint"].enabled
    if not multi:
        return out
    for point in _FRAMEWORK_ORDER:
        type_name = _TYPE_NAMES[point]
        disabled = set(p.plugins[point].disabled)
        if "*" in disabled:
            continue
        enabled = out[point]
        overrides: List[str] = []
        from_multi: List[str] = []
        for name, _ in multi:
            if name not in PLUGIN_EXTENSIONS:
                raise ConfigError(f"{type_name} {json.dumps(name)} does not exist")
            if point not in PLUGIN_EXTENSIONS[name] or name in disabled:
                continue
            if name in enabled:
                overrides.append(name)
                continue
            if name in from_multi:
                raise ConfigError(f"plugin {json.dumps(name)} already registered as {json.dumps(type_name)}")
            from_multi.append(name)
        out[point] = [n for n in enabled if n in overrides] + from_multi + [n for n in enabled if n not in overrides]
    return out


def _score_weights(p: _ProfileDoc, scores: List[str]) -> Dict[str, int]:
    """getScoreWeights: a score point's own weight before multiPoint's, 0 meaning 1; the overflow check."""
    weights: Dict[str, int] = {}
    total = 0
    for name, weight in p.plugins["score"].enabled + p.plugins["multiPoint"].enabled:
        if name not in scores or name in weights:
            continue
        weights[name] = weight or 1
        if weights[name] * MAX_NODE_SCORE > MAX_TOTAL_SCORE - total:
            raise ConfigError("total score of Score plugins could overflow")
        total += weights[name] * MAX_NODE_SCORE
    return {name: weights[name] for name in scores}


def _build_profile(p: _ProfileDoc) -> Tuple[Profile, Dict[str, List[Tuple[str, int]]]]:
    points = _expand(p)
    if len(points["queueSort"]) != 1:
        raise ConfigError(f"only one queue sort plugin required for profile with scheduler name "
                          f"{json.dumps(p.name)}, but got {len(points['queueSort'])}")
    if not points["bind"]:
        raise ConfigError(f"at least one bind plugin is needed for profile with scheduler name {json.dumps(p.name)}")
    weights = _score_weights(p, points["score"])
    enabled = {n for names in points.values() for n in names}
    args = dict(p.plugin_config)
    kwargs: Dict[str, Any] = {}
    if "SchedulingGates" not in points["preEnqueue"]:
        raise ConfigError("megaplane: the SchedulingGates plugin cannot be disabled (gated pods always wait)")
    # Plugins are created, and validate their args, in name order (the registry is walked as a map).
    for name in sorted(enabled):
        a = args.get(name)
        if a is None:
            continue
        if name == "NodeResourcesFit":
            errs = _validate_fit_args(a)
            if errs:
                raise ConfigError(f"initializing plugin \"{name}\": " + (errs[0] if len(errs) == 1 else
                                                                        "[" + ", ".join(errs) + "]"))
            if a["ignored"]:
                raise ConfigError("megaplane: NodeResourcesFit's ignoredResources/ignoredResourceGroups are not "
                                  "supported")
            kwargs["scoring_strategy"] = ScoringStrategy(a["type"], tuple(a["resources"]), tuple(a["shape"] or ()))
        elif name == "PodTopologySpread":
            if a["defaultingType"] == "List":
                kwargs["default_spread_constraints"] = tuple(_spread(c) for c in a["defaultConstraints"])
        elif name == "InterPodAffinity":
            if a["ignorePreferredTermsOfExistingPods"]:
                raise ConfigError("megaplane: InterPodAffinity's ignorePreferredTermsOfExistingPods is not supported")
            kwargs["hard_pod_affinity_weight"] = a["hardPodAffinityWeight"]
        elif name == "NodeAffinity" and a["addedAffinity"]:
            kwargs.update(_added_affinity(a["addedAffinity"]))
        elif name == "DefaultPreemption":
            if (a["minCandidateNodesPercentage"], a["minCandidateNodesAbsolute"]) != (10, 100):
                raise ConfigError("megaplane: DefaultPreemption's minCandidateNodes* other than 10 / 100 are not "
                                  "supported")
        elif name == "NodeResourcesBalancedAllocation":
            if sorted(r for r, _ in a["resources"]) != sorted(r for r, _ in DEFAULT_RESOURCES):
                raise ConfigError("megaplane: NodeResourcesBalancedAllocation scores cpu and memory only")
    profile = Profile(
        name=p.name,
        filters=tuple((n, FILTER_PLUGINS[n]) for n in points["filter"] if n in FILTER_PLUGINS),
        score_weights={n: w for n, w in weights.items() if n not in CONSTANT_SCORE_PLUGINS},
        preemption="DefaultPreemption" in points["postFilter"],
        percentage_of_nodes_to_score=p.percentage, **kwargs)
    summary = {point: [(n, weights.get(n, 0) if point == "score" else 0) for n in names]
               for point, names in points.items()}
    return profile, summary


def _spread(c: Mapping[str, Any]) -> SpreadConstraint:
    base = SYSTEM_DEFAULT_CONSTRAINTS[0]
    min_domains = c.get("minDomains")
    return SpreadConstraint(
        max_skew=int(c["maxSkew"]), topology_key=str(c["topologyKey"]), when_unsatisfiable=str(c["whenUnsatisfiable"]),
        selector=base.selector, min_domains=int(min_domains) if min_domains is not None else 1,
        node_affinity_policy=str(c.get("nodeAffinityPolicy") or "Honor"),
        node_taints_policy=str(c.get("nodeTaintsPolicy") or "Ignore"),
        match_label_keys=tuple(str(k) for k in c.get("matchLabelKeys") or ()))


def _term(term: Mapping[str, Any]) -> NodeSelectorTerm:
    def reqs(items: Any) -> Tuple[Requirement, ...]:
        return tuple(Requirement(str(r.get("key", "")), str(r.get("operator", "")),
                                 tuple(str(v) for v in r.get("values") or ())) for r in items or ())
    return NodeSelectorTerm(reqs(term.get("matchExpressions")), reqs(term.get("matchFields")))


def _added_affinity(affinity: Mapping[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        out["added_required_terms"] = tuple(_term(t) for t in required.get("nodeSelectorTerms") or ())
    preferred = affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    if preferred:
        out["added_preferred_terms"] = tuple((int(w.get("weight") or 0), _term(w.get("preference") or {}))
                                             for w in preferred)
    return out
