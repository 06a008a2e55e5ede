"""MLflow's limits and naming rules, with MLflow's messages, checked before anything is written.

The rules and the wording are those of ``mlflow/utils/validation.py`` (MLflow 3.17.2), so MLflow's
client sees the errors it expects and Shipyard's own API follows the same rules: keys are letters
and digits of any script, ``_ - . / :`` and spaces, at most 250 characters, and must not change
under path normalisation (no ``..``, no leading ``/``); metric values are doubles (NaN and
infinities included; proto3 JSON sends them as the strings "NaN", "Infinity", "-Infinity"); steps
and timestamps are int64; a batch holds at most 1000 metrics, 100 params, 100 tags, 1000 in all.
Param values over 6000 characters and run tag values over 8000 are truncated with a warning, as
MLflow does while ``MLFLOW_TRUNCATE_LONG_VALUES`` is true (its default).
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
import re
from collections.abc import Mapping, Sequence

from shipyard.errors import InputError

log = logging.getLogger("shipyard.tracking")

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_REQUEST_BYTES = 1024 * 1024
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20000
MAX_RUN_NAME_LENGTH = 250
MAX_INT64 = 2**63 - 1
MAX_DOUBLE = 1.7976931348623157e308

_KEY = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_VALID_KEYS: set[str] = set()
_MISSING_KEY = "A key name must be provided."
_BAD_CHARACTERS = ("Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), "
                   "colon(:) and slashes (/).")
_KEY_HINT = "keys may contain letters, digits, underscores, dashes, periods, slashes, colons and spaces"
_PROTO_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def invalid_value(path: str, value: object, message: str | None = None) -> str:
    """MLflow's ``Invalid value <json> for parameter '<path>' supplied`` sentence."""
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    if len(shown) > 250:
        shown = shown[:250] + "..."
    return f"Invalid value {shown} for parameter '{path}' supplied" + (f": {message}" if message else ".")


def exceeds_maximum_length(path: str, limit: int) -> str:
    return f"'{path}' exceeds the maximum length of {limit} characters"


def _bad_path(name: str) -> bool:
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def check_key(key: object, kind: str, path: str = "key") -> str:
    """A valid metric, param or tag key (``kind``), or InputError in MLflow's words for ``path``."""
    if isinstance(key, str) and key in _VALID_KEYS:
        return key
    if key is None:
        if kind == "metric":
            raise InputError(invalid_value(path, None, f"Metric name cannot be None. {_MISSING_KEY}"))
        if kind == "param":
            raise InputError(invalid_value(path, "", _MISSING_KEY))
        raise InputError(f"Missing value for required parameter '{path}'.")
    if not isinstance(key, str):
        raise InputError(invalid_value(path, key, f"Hint: Value was of type '{type(key).__name__}'."))
    if not _KEY.match(key):
        raise InputError(invalid_value(path, key, _BAD_CHARACTERS), hint=_KEY_HINT)
    if _bad_path(key):
        raise InputError(invalid_value(path, key, "Names may be treated as files in certain cases, and must not "
                                       "resolve to other names when treated as such. This name would resolve "
                                       f"to {posixpath.normpath(key)!r}"), hint=_KEY_HINT)
    if len(key) > MAX_KEY_LENGTH:
        entity = {"metric": "Metric name", "param": "Param key"}.get(kind, path)
        raise InputError(exceeds_maximum_length(entity, MAX_KEY_LENGTH) + f" (got {len(key)} characters)")
    if len(_VALID_KEYS) < 100_000:
        _VALID_KEYS.add(key)
    return key


def check_value(value: object, what: str, key: str, limit: int, *, truncate: bool = True) -> str:
    """A param or tag value as text; over ``limit`` characters it is truncated (MLflow) or refused."""
    if value is None:
        raise InputError(f"{what} '{key}' has no value" if what != "tag" else "Tag value cannot be None")
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    if truncate:
        log.warning("%s '%s...' (%d characters) is truncated to %d characters to meet the length limit.",
                    what.capitalize(), text[:100], len(text), limit)
        return text[:limit]
    raise InputError(exceeds_maximum_length("value", limit) + f" ({what} {key!r} has {len(text)})")


def check_metric_value(value: object, key: str, *, timestamp: object = None, path: str = "value") -> float:
    """A metric value as a float: a number, or a string proto3 JSON allows ("NaN", "Infinity", "1.5")."""
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if value is None:
        raise InputError(f"Missing value for required parameter '{path}'.")
    if isinstance(value, str) and value != "nan":
        if value in _PROTO_FLOATS:
            return _PROTO_FLOATS[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise InputError(invalid_value(path, value, f"(timestamp={timestamp}). "
                                   "Please specify value as a valid double (64-bit floating point)"),
                     hint=f"metric {key!r}: NaN and infinities are allowed, as numbers or as \"NaN\"/\"Infinity\"")


def json_number(value: float) -> float | str:
    """A double as proto3 JSON writes it: NaN and infinities as strings, everything else as is."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def check_int(value: object, field: str, *, minimum: int = -MAX_INT64, message: str | None = None) -> int:
    """An int64 (proto JSON may send it as a string of digits)."""
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value.strip()):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(invalid_value(field, value, message or f"Hint: Value was of type '{type(value).__name__}'. "
                                       "It must be an integer"))
    if not minimum <= value <= MAX_INT64:
        raise InputError(invalid_value(field, value, message or f"It must be between {minimum} and {MAX_INT64}"))
    return value


def check_run_id(run_id: object, path: str = "run_id") -> str:
    """MLflow's run id rule (a letter or digit, then up to 255 word characters or dashes)."""
    if run_id is None or run_id == "":
        raise InputError(f"Missing value for required parameter '{path}'. "
                         "See the API docs for more information about request parameters.")
    if not isinstance(run_id, str) or _RUN_ID.match(run_id) is None:
        raise InputError(invalid_value(path, run_id))
    return run_id


def _batch_limit(entity: str, limit: int, length: int) -> None:
    if length > limit:
        raise InputError(f"A batch logging request can contain at most {limit} {entity}. Got {length} {entity}. "
                         f"Please split up {entity} across multiple requests and try again.",
                         hint="the Python API splits batches for you")


def check_batch(metrics: Sequence[object], params: Mapping[str, object] | Sequence[object],
                tags: Mapping[str, object] | Sequence[object]) -> None:
    """MLflow's batch limits: 1000 metrics, 100 params, 100 tags, 1000 entities in total."""
    _batch_limit("metrics", MAX_METRICS_PER_BATCH, len(metrics))
    _batch_limit("params", MAX_PARAMS_PER_BATCH, len(params))
    _batch_limit("tags", MAX_TAGS_PER_BATCH, len(tags))
    _batch_limit("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, len(metrics) + len(params) + len(tags))


def check_params(params: Mapping[str, object]) -> dict[str, str]:
    return {check_key(k, "param"): check_value(v, "param", k, MAX_PARAM_VALUE_LENGTH) for k, v in params.items()}


def check_tags(tags: Mapping[str, object]) -> dict[str, str]:
    return {check_key(k, "tag"): check_value(v, "tag", k, MAX_TAG_VALUE_LENGTH) for k, v in tags.items()}


def check_experiment_name(name: object) -> str:
    if name is None or name == "":
        raise InputError(f"Invalid experiment name: '{'' if name is None else name}'")
    if not isinstance(name, str):
        raise InputError(f"Invalid experiment name: {name}. Expects a string.")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InputError(exceeds_maximum_length("name", MAX_EXPERIMENT_NAME_LENGTH))
    return name


def check_experiment_tags(tags: Mapping[str, object]) -> dict[str, str]:
    """Experiment tags: tag keys, values up to 20,000 characters (refused beyond, not truncated)."""
    out = {}
    for key, value in tags.items():
        check_key(key, "tag")
        text = "" if value is None else str(value)
        if len(text) > MAX_EXPERIMENT_TAG_VALUE_LENGTH:
            raise InputError(exceeds_maximum_length("value", MAX_EXPERIMENT_TAG_VALUE_LENGTH))
        out[key] = text
    return out
