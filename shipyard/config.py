"""shipyard.yaml and params.yaml: loading, interpolation and validation.

Errors name the file, line, column and key, and say what was expected, e.g.
``shipyard.yaml:7:5: pipeline.stages.train.deps: expected a list of paths, got a number``.

``${VAR}`` (upper-case names) is replaced from the environment everywhere, with ``${VAR:-default}``
for a fallback; ``${lower.dotted}`` is left for the pipeline, which templates it from params.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shipyard.errors import ConfigError, did_you_mean

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ENV_PATTERN = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


class Frozen(BaseModel):
    """Base of every config model: unknown keys are errors, values never change after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OutOptions(Frozen):
    """Options of one out (``- model.pkl: {cache: false}``)."""

    cache: bool = True
    persist: bool = False
    desc: str | None = None


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
    flavor: Literal["sklearn", "onnx", "xgboost", "lightgbm", "pickle"] = "sklearn"
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


GATE_KINDS = ("metric", "fairness", "latency", "max_size_mb", "signature", "behavioral", "replay")
_GATE_OPTIONS = {
    "metric": {"min", "max", "vs", "max_drop", "min_gain", "confidence", "resamples"},
    "fairness": {"group", "max"},
    "latency": {"latency_p50_ms", "latency_p99_ms", "rows"},
    "max_size_mb": set(),
    "signature": set(),
    "behavioral": set(),
    "replay": {"max_disagreement"},
}


class Gate(Frozen):
    """One entry of ``gates``: exactly one kind key (metric, fairness, latency_p50_ms/latency_p99_ms,
    max_size_mb, signature, behavioral, replay) plus that kind's options."""

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

    @property
    def kind(self) -> str:
        found = self._kinds()
        return found[0] if found else ""

    def _kinds(self) -> list[str]:
        present = [k for k in ("metric", "fairness", "max_size_mb", "signature", "behavioral", "replay")
                   if getattr(self, k) is not None]
        if self.latency_p50_ms is not None or self.latency_p99_ms is not None:
            present.append("latency")
        return present

    @model_validator(mode="after")
    def _one_kind(self) -> Gate:
        kinds = self._kinds()
        if not kinds:
            raise PydanticCustomError("gate_kind", "a gate needs one of: metric, fairness, latency_p50_ms, latency_p99_ms, max_size_mb, signature, behavioral, replay")
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
    backoff: str | float = "1s"
    timeout: str | float = "5s"
    digest_after: int = Field(10, ge=1)
    digest_window: str | float = "5m"
    events: list[str] = Field(default_factory=list)

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("backoff", "timeout", "digest_window")
    @classmethod
    def _positive_duration(cls, value: str | float) -> str | float:
        if parse_duration(value) <= 0:
            raise ValueError("a duration must be above 0")
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
_CONDITION = re.compile(r"^\s*(>=|<=|>|<)\s*(-?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: str | float | int) -> float:
    """``"60s"``, ``"1.5m"``, ``"250ms"``, ``"2h"``, ``"7d"`` or a number of seconds -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 60s, 2m, 250ms, 1h or 7d, got {value!r}")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[unit]


def parse_condition(text: str) -> tuple[str, float]:
    """``"> 0.01"`` -> (">", 0.01)."""
    match = _CONDITION.match(str(text))
    if not match:
        raise ValueError(f"expected a condition like \"> 0.01\" or \"< 0.9\", got {text!r}")
    return match.group(1), float(match.group(2))


class DeploySection(Frozen):
    """The ``deploy`` section: how ``shipyard deploy`` moves traffic and when it rolls back."""

    strategy: Literal["canary", "bluegreen", "shadow", "ab"] = "canary"
    # "required": a retrained version waits for 'shipyard rollout approve ID' before its rollout starts
    approval: Literal["none", "required"] = "none"
    steps: list[int] = Field(default_factory=lambda: [10, 25, 50, 100])
    interval: str | float = "60s"
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
    flush_interval: str | float = "1s"
    poll_interval: str | float = "1s"

    @field_validator("steps")
    @classmethod
    def _steps_rise_to_100(cls, value: list[int]) -> list[int]:
        if not value or any(not 0 < s <= 100 for s in value) or value != sorted(set(value)) or value[-1] != 100:
            raise ValueError("steps must rise strictly from above 0 and end at 100, e.g. [10, 25, 50, 100]")
        return value

    @field_validator("interval", "flush_interval", "poll_interval")
    @classmethod
    def _duration(cls, value: str | float) -> str | float:
        if parse_duration(value) <= 0:
            raise ValueError("a duration must be above 0")
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
}
FEATURE_STATS = ("wasserstein", "psi", "jensen_shannon", "drift", "null_rate", "out_of_range_share",
                 "unseen_share", "mean")
_TOKEN = re.compile(r"\s*(?:(?P<num>-?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)|(?P<op>>=|<=|==|!=|>|<)|"
                    r"(?P<lp>\()|(?P<rp>\))|(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*))")
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__,
        "==": float.__eq__, "!=": float.__ne__}


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


def parse_when(text: str) -> Any:
    """Parse ``drift_share > 0.3 and (accuracy < 0.85 or error_rate >= 0.05)`` into a small tree.

    No ``eval``: a tokenizer and a recursive-descent parser over comparisons of one metric with one
    number, joined by ``and``, ``or``, ``not`` and parentheses. Returns nested tuples
    ``("cmp", metric, op, number)``, ``("and", a, b)``, ``("or", a, b)``, ``("not", a)``.
    """
    tokens: list[tuple[str, str]] = []
    pos, text = 0, str(text)
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot read {text[pos:].strip()!r} in {text!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    if not tokens:
        raise ValueError("a rule needs a condition like 'drift_share > 0.3'")
    at = 0

    def peek() -> tuple[str, str] | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal at
        if at >= len(tokens):
            raise ValueError(f"{text!r} ends too early")
        at += 1
        return tokens[at - 1]

    def disjunction() -> Any:
        left = conjunction()
        while peek() == ("name", "or"):
            take()
            left = ("or", left, conjunction())
        return left

    def conjunction() -> Any:
        left = negation()
        while peek() == ("name", "and"):
            take()
            left = ("and", left, negation())
        return left

    def negation() -> Any:
        if peek() == ("name", "not"):
            take()
            return ("not", negation())
        if peek() and peek()[0] == "lp":  # type: ignore[index]
            take()
            inner = disjunction()
            if take()[0] != "rp":
                raise ValueError(f"missing ')' in {text!r}")
            return inner
        kind, metric = take()
        if kind != "name" or metric in ("and", "or", "not"):
            raise ValueError(f"expected a metric name in {text!r}, got {metric!r}")
        kind, op = take()
        if kind != "op":
            raise ValueError(f"expected a comparison (>, >=, <, <=, ==, !=) after {metric} in {text!r}")
        kind, number = take()
        if kind != "num":
            raise ValueError(f"expected a number after {metric} {op} in {text!r}, got {number!r}")
        return ("cmp", metric, op, float(number))

    tree = disjunction()
    if at != len(tokens):
        raise ValueError(f"unexpected {tokens[at][1]!r} in {text!r}")
    return tree


def when_metrics(tree: Any) -> list[str]:
    """The metric names a parsed condition reads."""
    if tree[0] == "cmp":
        return [tree[1]]
    return [m for part in tree[1:] for m in when_metrics(part)]


def eval_when(tree: Any, metrics: dict[str, Any]) -> bool | None:
    """True/False, or None when a metric it needs is missing from ``metrics`` (no verdict)."""
    op = tree[0]
    if op == "cmp":
        value = metrics.get(tree[1])
        if value is None or isinstance(value, bool | str):
            return None if not isinstance(value, bool) else _OPS[tree[2]](float(value), tree[3])
        return _OPS[tree[2]](float(value), tree[3])
    if op == "not":
        inner = eval_when(tree[1], metrics)
        return None if inner is None else not inner
    left, right = eval_when(tree[1], metrics), eval_when(tree[2], metrics)
    if op == "and":
        if left is False or right is False:
            return False
        return None if left is None or right is None else True
    if left is True or right is True:
        return True
    return None if left is None or right is None else False


class MonitorRule(Frozen):
    """One entry of ``monitor.rules``: a condition over window metrics and what to do when it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = None
    when: str
    for_windows: int = Field(1, alias="for", ge=1, le=1000)
    cooldown: str | float = "1h"
    severity: Literal["info", "warning", "critical"] = "warning"
    actions: list[Literal["alert", "retrain", "rollback"]] = Field(default_factory=lambda: ["alert"])

    @field_validator("when")
    @classmethod
    def _parses(cls, value: str) -> str:
        for metric in when_metrics(parse_when(value)):
            check_metric(metric)
        return value

    @field_validator("cooldown")
    @classmethod
    def _duration(cls, value: str | float) -> str | float:
        if parse_duration(value) < 0:
            raise ValueError("a cooldown cannot be negative")
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

    every: str | float | None = None
    cron: str | None = None
    timezone: str = "UTC"  # IANA name: the wall clock ``cron`` is read on
    on_new_data: bool = True
    watch: list[str] = Field(default_factory=list)
    min_interval: str | float = "10m"
    command: str | list[str] = "shipyard run"
    strategy: Literal["canary", "bluegreen", "shadow", "ab"] | None = None
    approval: Literal["required", "none"] = "none"
    timeout: str | float = "1h"

    @field_validator("every", "min_interval", "timeout")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        if value is not None and parse_duration(value) < 0:
            raise ValueError("a duration cannot be negative")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else parse_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        zone_of(value)
        return value


def zone_of(name: str) -> Any:
    """The IANA time zone ``name`` (``Europe/Paris``, ``UTC``), or ValueError saying what is expected."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as UTC, "
                         f"Europe/Paris or America/New_York") from exc


def parse_cron(text: str) -> str:
    """A five-field cron schedule (minute hour day month weekday), checked by cronsim; returns it
    with its fields separated by one space. As in cron, when both day of month and day of week are
    restricted, a day matching either one is due."""
    from cronsim import CronSim, CronSimError

    fields = str(text).split()
    if len(fields) != 5:
        raise ValueError(f"a cron schedule has 5 fields (minute hour day month weekday), got {text!r}")
    expr = " ".join(fields)
    try:
        CronSim(expr, datetime.now(UTC))
    except CronSimError as exc:
        raise ValueError(f"bad cron schedule {text!r}: {exc}") from exc
    return expr


def cron_next(expr: str, after: float, timezone: str = "UTC") -> float:
    """The first time (seconds since the epoch) strictly after ``after`` that ``expr`` names, read
    on the wall clock of ``timezone`` (daylight-saving changes as cronsim handles them)."""
    from cronsim import CronSim

    start = datetime.fromtimestamp(after, zone_of(timezone))
    return next(iter(CronSim(expr, start))).timestamp()


class MonitorSection(Frozen):
    """The ``monitor`` section: windows over the request log, the rules judged on them, retraining."""

    models: list[str] = Field(default_factory=list)
    window: str | float = "5m"
    window_rows: int | None = Field(None, ge=1)
    min_rows: int = Field(30, ge=1)
    every: str | float = "1m"
    thresholds: Literal["auto", "effect", "calibrated"] = "auto"
    drift_share: float = Field(0.5, gt=0, le=1)
    drift_rows: int = Field(25_000, ge=1000)
    rules: list[MonitorRule] = Field(default_factory=list)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)

    @field_validator("window", "every")
    @classmethod
    def _positive(cls, value: str | float) -> str | float:
        if parse_duration(value) <= 0:
            raise ValueError("a duration must be above 0")
        return value

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
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    notify: list[Notifier] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)


class LoadedYaml:
    """A parsed YAML document that still knows where each value came from."""

    def __init__(self, path: Path, data: Any, root_node: yaml.Node | None) -> None:
        self.path = path
        self.data = data
        self._root = root_node

    def where(self, loc: tuple[str | int, ...], at_key: bool = False) -> str:
        """``file:line:col`` of the deepest node of ``loc`` that exists (its key if ``at_key``)."""
        node = self._root
        best = node
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            node = _child(node, part, want_key=at_key and last)
            if node is None:
                break
            best = node
        if best is None:
            return str(self.path)
        mark = best.start_mark
        return f"{self.path.name}:{mark.line + 1}:{mark.column + 1}"


def _child(node: yaml.Node | None, part: str | int, want_key: bool = False) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                # Empty scalars have no useful position of their own: point at the key.
                empty = isinstance(value, yaml.ScalarNode) and not value.value
                return key if want_key or empty else value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def load_yaml(path: str | os.PathLike[str], *, missing_ok: bool = False) -> LoadedYaml:
    """Parse a YAML file, keeping positions; a malformed file raises ConfigError with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return LoadedYaml(path, {}, None)
        raise ConfigError(f"{path}: file not found", hint="run 'shipyard init' to create it")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        raise ConfigError(
            f"{where}: malformed YAML: {exc.problem or exc.context}",
            hint="check indentation and quoting on that line",
        ) from exc
    if data is None:
        data = {}
    return LoadedYaml(path, data, node)


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
                f"{loaded.where(loc)}: {_dotted(loc)}: environment variable {name} is not set",
                hint=f"export {name}=... or write ${{{name}:-default}}",
            )

        return ENV_PATTERN.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: interpolate_env(v, loaded, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, loaded, (*loc, i)) for i, v in enumerate(value)]
    return value


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


_TYPE_WORDS = {
    "list_type": "a list",
    "dict_type": "a mapping",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__


def _model_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The field names allowed at ``loc`` (for 'did you mean' on unknown keys)."""
    annotation: Any = model
    for part in loc:
        target = _first_model(annotation)
        fields = getattr(target, "model_fields", None) if target is not None else None
        if fields is not None and part in fields and _is_model(annotation):
            annotation = fields[part].annotation
        elif _container_value(annotation) is not None:
            annotation = _container_value(annotation)  # a dict key or list index: step into its value
        else:
            return []
    target = _first_model(annotation)
    return list(target.model_fields) if target is not None else []


def _is_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_is_model(a) for a in getattr(annotation, "__args__", ()) if getattr(a, "__origin__", None) is None)


def _container_value(annotation: Any) -> Any:
    origin = getattr(annotation, "__origin__", None)
    args = getattr(annotation, "__args__", ())
    if origin in (dict, list) and args:
        return args[-1]
    for arg in args:
        found = _container_value(arg)
        if found is not None:
            return found
    return None


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if getattr(annotation, "__origin__", None) in (dict, list):
        return None
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def explain_validation(exc: ValidationError, loaded: LoadedYaml, model: type[BaseModel]) -> str:
    """Turn pydantic's errors into ``file:line:col: key: expected ..., got ...`` lines."""
    lines = []
    for err in exc.errors():
        # Drop union branch names pydantic inserts (e.g. 'str', 'list[str]').
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in {"str", "int", "bool", "float", "dict", "list"})))
        kind = err["type"]
        where = loaded.where(loc, at_key=kind == "extra_forbidden")
        key = _dotted(loc)
        if kind == "extra_forbidden":
            unknown = str(loc[-1])
            parent_keys = _model_keys(model, loc[:-1])
            hint = did_you_mean(unknown, parent_keys)
            lines.append(f"{where}: {key}: unknown key" + (f" ({hint})" if hint else ""))
        elif kind == "missing":
            lines.append(f"{where}: {key}: required key is missing")
        elif kind in _TYPE_WORDS:
            lines.append(f"{where}: {key}: expected {_TYPE_WORDS[kind]}, got {_describe(err.get('input'))}")
        else:
            lines.append(f"{where}: {key}: {err['msg']}")
    return "\n".join(dict.fromkeys(lines))


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
