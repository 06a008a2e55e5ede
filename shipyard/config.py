"""The schema of shipyard.yaml and params.yaml (pydantic models), and their loading.

The pieces the schema stands on live in foundation modules of their own: ``durations``,
``conditions`` (thresholds and the monitor rules' boolean language), ``cron``, ``yaml_positions``
(where a value came from) and ``validation_errors`` (pydantic's errors as file:line:col lines).

Errors name the file, line, column and key, and say what was expected, e.g.
``shipyard.yaml:7:5: pipeline.stages.train.deps: expected a list of paths, got a number``.

``${VAR}`` (upper-case names) is replaced from the environment everywhere, with ``${VAR:-default}``
for a fallback; ``${lower.dotted}`` is left for the pipeline, which templates it from params.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shipyard.conditions import parse_condition, parse_when, when_metrics
from shipyard.cron import parse_cron, zone_of
from shipyard.durations import parse_duration
from shipyard.errors import ConfigError, did_you_mean
from shipyard.features.config import FeaturesSection, StageFeatures
from shipyard.supply.config import SupplySection
from shipyard.validation_errors import explain_validation
from shipyard.yaml_positions import LoadedYaml, dotted_key, load_yaml

# parse_duration, load_yaml and explain_validation stay importable from here for the files that are
# not yet moved to their new homes (gates/behavior.py, cli/server.py); new code imports them from
# where they live.
ENV_PATTERN = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def _above_zero(value: str | float) -> str | float:
    if parse_duration(value) <= 0:
        raise ValueError("a duration must be above 0")
    return value


def _not_negative(value: str | float) -> str | float:
    if parse_duration(value) < 0:
        raise ValueError("a duration cannot be negative")
    return value


# Durations as written in the file (``60s``, ``2m``, a number of seconds), checked once here.
PositiveDuration = Annotated[str | float, AfterValidator(_above_zero)]
Duration = Annotated[str | float, AfterValidator(_not_negative)]


class Frozen(BaseModel):
    """Base of every config model: unknown keys are errors, values never change after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OutOptions(Frozen):
    """Options of one out (``- model.pkl: {cache: false}``)."""

    cache: bool = True
    persist: bool = False
    desc: str | None = None


class StageResources(Frozen):
    """What a stage asks of the machine that runs it, handed to orchestrators (``shipyard export``).

    ``cpu`` in cores (``2``, ``0.5`` or ``"500m"``), ``memory`` as Kubernetes writes it (``"4Gi"``,
    ``"512M"``), ``gpu`` a count. The local executor runs a stage in the current machine as is.
    """

    cpu: int | float | str | None = None
    memory: str | None = None
    gpu: int | None = Field(None, ge=0)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: int | float | str | None) -> int | float | str | None:
        if value is None:
            return None
        text = str(value)
        number = text[:-1] if text.endswith("m") else text
        try:
            if float(number) <= 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"cpu must be a positive number of cores (2, 0.5) or millicores ('500m'), got {value!r}") from None
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?", value):
            raise ValueError(f"memory must be a size such as '4Gi' or '512M', got {value!r}")
        return value


class CostSection(Frozen):
    """The price table (``cost:``): what an hour of CPU, of a GB of memory, of a GPU costs.

    A price left out is *unpriced*: runs say so instead of counting it as zero.
    """

    cpu_hour: float | None = Field(None, ge=0)
    memory_gb_hour: float | None = Field(None, ge=0)
    gpu_hour: float | None = Field(None, ge=0)
    storage_gb_month: float | None = Field(None, ge=0)
    currency: str = Field("USD", min_length=1, max_length=8)


class BudgetSection(Frozen):
    """Budgets (``budget:``): alerts through ``notify:`` at each ``alert_at`` share, and a sweep or a
    scheduled retrain that would exceed one does not start."""

    per_run: float | None = Field(None, gt=0)
    per_day: float | None = Field(None, gt=0)
    per_month: float | None = Field(None, gt=0)
    alert_at: list[float] = Field(default_factory=lambda: [0.8, 1.0])

    @field_validator("alert_at")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < share <= 10 for share in value):
            raise ValueError("alert_at lists shares of the budget above 0, such as [0.8, 1.0]")
        return sorted(value)


class SweepSection(Frozen):
    """A sweep declared in shipyard.yaml (``sweeps: {STAGE: ...}``): ``shipyard sweep STAGE`` takes
    these as defaults; the command line's options win."""

    params: dict[str, str] = Field(default_factory=dict)  # train.lr: loguniform(1e-4,1e-1)
    metric: str | None = None
    direction: Literal["maximize", "minimize"] = "maximize"
    trials: int = Field(20, ge=1)
    jobs: int = Field(1, ge=1)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    seed: int | None = None


class StageEnvironment(Frozen):
    """A stage's own Python environment, built with uv (shipyard.pipeline.envs).

    ``requirements`` is resolved with ``uv pip compile``; ``lock`` is a pinned file used as is.
    """

    python: str | None = Field(None, pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")  # default: Shipyard's own
    requirements: str | None = None
    lock: str | None = None

    @model_validator(mode="after")
    def _one_file(self) -> StageEnvironment:
        if (self.requirements is None) == (self.lock is None):
            raise ValueError("give exactly one of requirements (resolved by uv) or lock (a pinned file)")
        return self


class Stage(Frozen):
    """One pipeline stage, as written in ``pipeline.stages``.

    ``cmd`` is required, except in a ``foreach`` stage, whose ``do`` block holds the stage body.
    """

    cmd: str | list[str] | None = None
    deps: list[str] = Field(default_factory=list)
    params: list[str | dict[str, list[str] | None]] = Field(default_factory=list)
    outs: list[str | dict[str, OutOptions | None]] = Field(default_factory=list)
    metrics: list[str | dict[str, OutOptions | None]] = Field(default_factory=list)
    plots: list[str | dict[str, OutOptions | None]] = Field(default_factory=list)
    wdir: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    always_changed: bool = False
    frozen: bool = False
    foreach: list[Any] | dict[str, Any] | str | None = None
    matrix: dict[str, list[Any] | str] | None = None
    do: dict[str, Any] | None = None
    desc: str | None = None
    # feature views read before the stage runs (shipyard.features; docs/guide/features.md)
    features: StageFeatures | None = None
    # its own Python environment, built with uv and cached by its lock's hash (shipyard.pipeline.envs)
    environment: StageEnvironment | None = None
    # for orchestrators that run each stage as a step (shipyard export kfp|airflow)
    resources: StageResources | None = None
    retries: int = Field(0, ge=0, le=10)

    @model_validator(mode="after")
    def _has_a_body(self) -> Stage:
        if self.foreach is not None:
            if self.do is None:
                raise ValueError("a foreach stage needs a 'do' block holding cmd, deps and outs")
        elif self.cmd is None or self.cmd == [] or self.cmd == "":
            raise ValueError("required key 'cmd' is missing (the command this stage runs)")
        return self


class Pipeline(Frozen):
    """The ``pipeline`` section: stages by name, and the executor that runs them."""

    stages: dict[str, Stage] = Field(default_factory=dict)
    executor: str = "local"
    environment: list[str] = Field(default_factory=list)


class ModelSection(Frozen):
    """The ``model`` section: what registration and gates need to know."""

    name: str
    path: str
    flavor: Literal["sklearn", "onnx", "xgboost", "lightgbm", "pickle", "mlflow"] = "sklearn"
    train: str | None = None
    eval: str | None = None
    target: str | None = None
    features: list[str] | None = None
    groups: list[str] = Field(default_factory=list)
    # `register:` in the file. auto: `shipyard run` registers the model after the stage that writes
    # model.path ran or was restored; manual: only `shipyard models register` (and `shipyard ci`) do.
    # (The field has another name because BaseModel.register exists.)
    register_mode: Literal["auto", "manual"] = Field("auto", alias="register")

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", value):
            raise ValueError("a model name uses letters, digits, '.', '_' and '-' only")
        return value


GATE_KINDS = ("metric", "fairness", "latency", "max_size_mb", "signature", "behavioral", "replay", "scan", "signed",
              "forbid_classified")
_GATE_OPTIONS = {
    "metric": {"min", "max", "vs", "max_drop", "min_gain", "confidence", "resamples"},
    "fairness": {"group", "max"},
    "latency": {"latency_p50_ms", "latency_p99_ms", "rows"},
    "max_size_mb": set(),
    "signature": set(),
    "behavioral": set(),
    "replay": {"max_disagreement"},
    "scan": set(),
    "signed": set(),
    "forbid_classified": set(),
    "max_cost": {"vs", "max_increase"},
}


class Gate(Frozen):
    """One entry of ``gates``: exactly one kind key (metric, fairness, latency_p50_ms/latency_p99_ms,
    max_size_mb, signature, behavioral, replay, scan, signed, forbid_classified, max_cost) plus that kind's options."""

    name: str | None = None
    metric: str | None = None
    min: float | None = None
    max: float | None = None
    vs: Literal["champion"] | None = None
    max_drop: float | None = Field(default=None, ge=0)
    min_gain: float | None = None
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    resamples: int = Field(default=1000, ge=100, le=100_000)
    fairness: Literal["demographic_parity_difference", "equalized_odds_difference"] | None = None
    group: str | None = None
    latency_p50_ms: float | None = Field(default=None, gt=0)
    latency_p99_ms: float | None = Field(default=None, gt=0)
    rows: int = Field(default=200, ge=10)
    max_size_mb: float | None = Field(default=None, gt=0)
    signature: Literal["compatible"] | None = None
    behavioral: str | None = None
    replay: str | None = None
    max_disagreement: float | None = Field(default=None, ge=0, le=1)
    scan: Literal["clean"] | None = None      # the model's files pass `shipyard scan` (docs/guide/security.md)
    signed: Literal[True] | None = None       # the version's signature verifies with an accepted key
    forbid_classified: str | None = None      # no feature classified so (e.g. pii) may train the model
    max_cost: float | None = Field(default=None, ge=0)  # the training run's cost (cost: table), docs/guide/cost.md
    max_increase: float | str | None = None   # with vs: champion: at most this much above the champion's ("50%")

    @field_validator("max_increase")
    @classmethod
    def _increase(cls, value: float | str | None) -> float | None:
        if value is None:
            return None
        text = str(value).strip()
        try:
            share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"max_increase is a share such as 0.5 or '50%', got {value!r}") from None
        if share < 0:
            raise ValueError(f"max_increase cannot be negative, got {value!r}")
        return share

    @property
    def kind(self) -> str:
        found = self._kinds()
        return found[0] if found else ""

    def _kinds(self) -> list[str]:
        present = [k for k in ("metric", "fairness", "max_size_mb", "signature", "behavioral", "replay", "scan", "signed",
                                "forbid_classified", "max_cost")
                   if getattr(self, k) is not None]
        if self.latency_p50_ms is not None or self.latency_p99_ms is not None:
            present.append("latency")
        return present

    @model_validator(mode="after")
    def _one_kind(self) -> Gate:
        kinds = self._kinds()
        if not kinds:
            raise PydanticCustomError("gate_kind", "a gate needs one of: metric, fairness, latency_p50_ms, latency_p99_ms, max_size_mb, signature, behavioral, replay, scan, signed, forbid_classified, max_cost")
        if len(kinds) > 1:
            raise PydanticCustomError("gate_kind", "one gate has one kind, this one has {kinds}: write them as separate gates", {"kinds": " and ".join(kinds)})
        kind = kinds[0]
        allowed = _GATE_OPTIONS[kind] | {"name", kind}
        for key in self.model_fields_set - allowed:
            raise PydanticCustomError("gate_option", "{key} does not apply to a {kind} gate", {"key": key, "kind": kind})
        if kind == "metric":
            if self.vs is None and self.min is None and self.max is None:
                raise PydanticCustomError("gate_metric", "metric gate {metric}: give min and/or max, or vs: champion with max_drop or min_gain", {"metric": self.metric})
            if self.vs is not None and (self.min is not None or self.max is not None):
                raise PydanticCustomError("gate_metric", "metric gate {metric}: write the threshold (min/max) and the champion comparison as two gates", {"metric": self.metric})
            if self.vs is not None and self.max_drop is None and self.min_gain is None:
                raise PydanticCustomError("gate_metric", "metric gate {metric} vs champion: give max_drop or min_gain", {"metric": self.metric})
            if self.vs is None and {"max_drop", "min_gain", "confidence", "resamples"} & self.model_fields_set:
                raise PydanticCustomError("gate_metric", "metric gate {metric}: max_drop, min_gain, confidence and resamples need vs: champion", {"metric": self.metric})
        if kind == "fairness" and (self.group is None or self.max is None):
            raise PydanticCustomError("gate_fairness", "fairness gate {f}: give group (a column) and max", {"f": self.fairness})
        if kind == "replay" and self.max_disagreement is None:
            raise PydanticCustomError("gate_replay", "replay gate {r}: give max_disagreement (a share between 0 and 1)", {"r": self.replay})
        return self

    def label(self) -> str:
        """A short name for reports: the explicit ``name`` or one made from the kind."""
        if self.name:
            return self.name
        kind = self.kind
        if kind == "metric":
            if self.vs:
                bound = f"max_drop {self.max_drop}" if self.max_drop is not None else f"min_gain {self.min_gain}"
                return f"{self.metric} vs champion ({bound})"
            parts = [f">= {self.min}" if self.min is not None else "", f"<= {self.max}" if self.max is not None else ""]
            return f"{self.metric} " + " and ".join(p for p in parts if p)
        if kind == "fairness":
            return f"{self.fairness} by {self.group}"
        if kind == "latency":
            return "latency " + ", ".join(f"{k} <= {v}" for k, v in (("p50", self.latency_p50_ms), ("p99", self.latency_p99_ms)) if v is not None) + " ms"
        if kind == "max_size_mb":
            return f"model size <= {self.max_size_mb} MB"
        if kind == "signature":
            return "signature compatible with champion"
        if kind == "behavioral":
            return f"behavioural tests {self.behavioral}"
        if kind == "scan":
            return "model scan clean"
        if kind == "signed":
            return "signed with an accepted key"
        if kind == "forbid_classified":
            return f"no feature classified {self.forbid_classified}"
        if kind == "max_cost":
            more = f", at most +{float(self.max_increase):.0%} vs champion" if self.max_increase is not None else ""
            return f"training cost <= {self.max_cost:g}{more}"
        return f"replay {self.replay}"


class Notifier(Frozen):
    """One entry of ``notify``: where alerts and rollout events are sent.

    Deliveries are HMAC-signed when ``secret`` is set, retried ``retries`` times with exponential
    backoff from ``backoff``, and past ``digest_after`` events in ``digest_window`` the rest are
    sent as one digest when the window ends. ``events`` keeps only kinds starting with one of its
    prefixes (``monitor.``, ``rollout.``, ``retrain.``); empty means every event.
    """

    webhook: str
    format: Literal["json", "slack", "teams"] = "json"
    secret: str | None = None
    retries: int = Field(3, ge=0, le=10)
    backoff: PositiveDuration = "1s"
    timeout: PositiveDuration = "5s"
    digest_after: int = Field(10, ge=1)
    digest_window: PositiveDuration = "5m"
    events: list[str] = Field(default_factory=list)

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value


class StickySettings(Frozen):
    """``deploy.sticky``: keep each client on one version (by a header, else a body key's hash)."""

    header: str | None = "x-shipyard-key"
    key: str | None = None


class BatchingSettings(Frozen):
    """``deploy.batching``: merge concurrent requests into one model call (adaptive: a request that
    finds no other in flight runs at once, so it costs nothing at concurrency 1)."""

    enabled: bool = True
    max_batch_size: int = Field(64, ge=1, le=100_000)
    max_latency_ms: float = Field(2.0, gt=0, le=10_000)


ROLLBACK_METRICS = ("error_rate", "latency_p99_ms", "latency_p99_ratio", "prediction_psi",
                    "shadow_disagreement", "accuracy", "accuracy_drop")


# The one list of rollout strategies: the schema's choices, the controller's phases and the
# gateway's strategy table (serving/routing.py, which adds "single") all follow it.
RolloutStrategy = Literal["canary", "bluegreen", "shadow", "ab"]
ROLLOUT_STRATEGIES: tuple[str, ...] = get_args(RolloutStrategy)


class DeploySection(Frozen):
    """The ``deploy`` section: how ``shipyard deploy`` moves traffic and when it rolls back."""

    strategy: RolloutStrategy = "canary"
    # "required": a retrained version waits for 'shipyard rollout approve ID' before its rollout starts
    approval: Literal["none", "required"] = "none"
    steps: list[int] = Field(default_factory=lambda: [10, 25, 50, 100])
    interval: PositiveDuration = "60s"
    min_samples: int = Field(200, ge=1)
    consecutive_successes: int = Field(1, ge=1)
    failure_limit: int = Field(0, ge=0)
    rollback_when: dict[str, str] = Field(default_factory=lambda: {
        "error_rate": "> 0.01", "latency_p99_ms": "> 500", "prediction_psi": "> 0.2",
        "shadow_disagreement": "> 0.2"})
    shadow_percent: float = Field(100.0, ge=0, le=100)
    ab_split: float = Field(50.0, gt=0, lt=100)
    sticky: StickySettings = Field(default_factory=StickySettings)
    candidate_timeout_ms: float = Field(250.0, gt=0)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    request_log: str | None = None
    flush_interval: PositiveDuration = "1s"
    poll_interval: PositiveDuration = "1s"

    @field_validator("steps")
    @classmethod
    def _steps_rise_to_100(cls, value: list[int]) -> list[int]:
        if not value or any(not 0 < s <= 100 for s in value) or value != sorted(set(value)) or value[-1] != 100:
            raise ValueError("steps must rise strictly from above 0 and end at 100, e.g. [10, 25, 50, 100]")
        return value

    @field_validator("rollback_when")
    @classmethod
    def _conditions(cls, value: dict[str, str]) -> dict[str, str]:
        for metric, condition in value.items():
            if metric not in ROLLBACK_METRICS:
                hint = did_you_mean(metric, ROLLBACK_METRICS) or ""
                raise ValueError(f"unknown metric {metric!r} {hint}".strip())
            parse_condition(condition)
        return value

    @property
    def interval_s(self) -> float:
        return parse_duration(self.interval)

    def thresholds(self) -> dict[str, tuple[str, float]]:
        return {metric: parse_condition(cond) for metric, cond in self.rollback_when.items()}


class ServeSection(Frozen):
    """The ``serve`` section: how ``shipyard serve`` (the gateway) admits callers.

    ``auth: token``: predictions need a token with gateway:invoke on the project, feedback a token,
    admin routes deploy:write (``shipyard.server.security.gateway_policy``); ``none`` admits anyone.
    """

    auth: Literal["none", "token"] = "none"


# -- monitor ---------------------------------------------------------------------------------------
WINDOW_METRICS = {
    "rows": "requests in the window (shadow traffic excluded)",
    "errors": "requests that failed",
    "error_rate": "share of requests that failed",
    "latency_mean_ms": "mean latency", "latency_p50_ms": "median latency",
    "latency_p95_ms": "95th percentile latency", "latency_p99_ms": "99th percentile latency",
    "drift_share": "share of features whose drift verdict is DRIFT",
    "drifted_features": "number of features whose drift verdict is DRIFT",
    "dataset_drift": "1 when the data room's dataset drift verdict holds, else 0",
    "multivariate_drift": "relative change of the PCA reconstruction error vs the reference",
    "prediction_drift": "Jensen-Shannon distance of predictions vs the training target (or first window)",
    "null_share": "share of feature cells that are null",
    "out_of_range_share": "share of rows with a numeric feature outside the training range",
    "unseen_category_share": "share of rows with a category never seen in training",
    "missing_features": "features of the model's schema absent from the log",
    "labelled": "requests of the window with a feedback label",
    "accuracy": "realized accuracy on labelled requests", "f1": "realized macro F1 on labelled requests",
    "rmse": "realized RMSE on labelled requests", "mae": "realized MAE on labelled requests",
    "estimated_accuracy": "CBPE estimate of accuracy from calibrated confidence (no labels needed)",
    "feature_skew": "largest share of sampled entities whose online feature differs from the offline value",
}
FEATURE_STATS = ("wasserstein", "psi", "jensen_shannon", "drift", "null_rate", "out_of_range_share",
                 "unseen_share", "mean", "skew")
def check_metric(name: str, features: list[str] | None = None) -> None:
    """Raise ValueError when ``name`` is not a window metric (``feature.<name>.<stat>`` included)."""
    if name in WINDOW_METRICS:
        return
    if name.startswith("feature."):
        rest = name.removeprefix("feature.")
        feature, _, stat = rest.rpartition(".")
        if not feature or stat not in FEATURE_STATS:
            hint = did_you_mean(stat, FEATURE_STATS) or ""
            raise ValueError(f"unknown metric {name!r}: write feature.<name>.<stat> with stat one of "
                             f"{', '.join(FEATURE_STATS)} {hint}".strip())
        if features is not None and feature not in features:
            hint = did_you_mean(feature, features) or ""
            raise ValueError(f"unknown metric {name!r}: {feature!r} is not one of model.features {hint}".strip())
        return
    hint = did_you_mean(name, [*WINDOW_METRICS, "feature.<name>.psi"])
    raise ValueError(f"unknown metric {name!r}" + (f" ({hint})" if hint else "")
                     + "; known: " + ", ".join(WINDOW_METRICS) + ", feature.<name>.<stat>")


class MonitorRule(Frozen):
    """One entry of ``monitor.rules``: a condition over window metrics and what to do when it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = None
    when: str
    for_windows: int = Field(1, alias="for", ge=1, le=1000)
    cooldown: Duration = "1h"
    severity: Literal["info", "warning", "critical"] = "warning"
    actions: list[Literal["alert", "retrain", "rollback"]] = Field(default_factory=lambda: ["alert"])

    @field_validator("when")
    @classmethod
    def _parses(cls, value: str) -> str:
        for metric in when_metrics(parse_when(value)):
            check_metric(metric)
        return value

    @property
    def label(self) -> str:
        return self.name or self.when

    @property
    def tree(self) -> Any:
        return parse_when(self.when)

    @property
    def cooldown_s(self) -> float:
        return parse_duration(self.cooldown)


class RetrainSettings(Frozen):
    """``monitor.retrain``: when to retrain besides rules, and how the new version goes out."""

    every: Duration | None = None
    cron: str | None = None
    timezone: str = "UTC"  # IANA name: the wall clock ``cron`` is read on
    on_new_data: bool = True
    watch: list[str] = Field(default_factory=list)
    min_interval: Duration = "10m"
    command: str | list[str] = "shipyard run"
    strategy: RolloutStrategy | None = None
    approval: Literal["required", "none"] = "none"
    timeout: Duration = "1h"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else parse_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        zone_of(value)
        return value


class MonitorSection(Frozen):
    """The ``monitor`` section: windows over the request log, the rules judged on them, retraining."""

    models: list[str] = Field(default_factory=list)
    window: PositiveDuration = "5m"
    window_rows: int | None = Field(None, ge=1)
    min_rows: int = Field(30, ge=1)
    every: PositiveDuration = "1m"
    thresholds: Literal["auto", "effect", "calibrated"] = "auto"
    drift_share: float = Field(0.5, gt=0, le=1)
    drift_rows: int = Field(25_000, ge=1000)
    rules: list[MonitorRule] = Field(default_factory=list)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)

    @property
    def window_s(self) -> float:
        return parse_duration(self.window)

    @property
    def every_s(self) -> float:
        return parse_duration(self.every)


class ShipyardConfig(Frozen):
    """The whole of shipyard.yaml.

    ``gates`` and ``monitor`` are kept as parsed YAML here and validated by their own services
    (gates/, monitoring/), which own their vocabulary; ``deploy`` is ``DeploySection``.
    """

    version: int = 1
    pipeline: Pipeline = Field(default_factory=Pipeline)
    model: ModelSection | None = None
    gates: list[Gate] = Field(default_factory=list)
    deploy: DeploySection = Field(default_factory=DeploySection)
    serve: ServeSection = Field(default_factory=ServeSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    notify: list[Notifier] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    features: FeaturesSection | None = None
    supply: SupplySection = Field(default_factory=SupplySection)  # docs/guide/security.md
    sweeps: dict[str, SweepSection] = Field(default_factory=dict)  # by stage; docs/guide/pipeline.md#sweeps
    cost: CostSection | None = None  # docs/guide/cost.md
    budget: BudgetSection | None = None


def interpolate_env(value: Any, loaded: LoadedYaml, loc: tuple[str | int, ...] = ()) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` from the environment, recursively."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{loaded.where(loc)}: {dotted_key(loc)}: environment variable {name} is not set",
                hint=f"export {name}=... or write ${{{name}:-default}}",
            )

        return ENV_PATTERN.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: interpolate_env(v, loaded, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, loaded, (*loc, i)) for i, v in enumerate(value)]
    return value


def load_config(path: str | os.PathLike[str]) -> ShipyardConfig:
    """Load and validate shipyard.yaml."""
    loaded = load_yaml(path)
    if not isinstance(loaded.data, Mapping):
        raise ConfigError(f"{loaded.where(())}: expected a mapping at the top of {loaded.path.name}")
    data = interpolate_env(loaded.data, loaded)
    try:
        return ShipyardConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            explain_validation(exc, loaded, ShipyardConfig),
            hint="see docs/user-guide.md#shipyardyaml for every key",
        ) from None


def load_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load params.yaml (any nested mapping); a missing file is an empty mapping."""
    loaded = load_yaml(path, missing_ok=True)
    if not isinstance(loaded.data, Mapping):
        raise ConfigError(f"{loaded.where(())}: params must be a mapping of names to values")
    return dict(loaded.data)


def lookup_param(params: Mapping[str, Any], dotted: str) -> Any:
    """``train.lr`` -> params['train']['lr']; KeyError names the missing part."""
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value
