"""MLflow's limits and naming rules, checked before anything is written (a batch is all or nothing).

Keys follow MLflow's rule (letters and digits of any script, ``_ - . / :`` and spaces, at most 250
characters, no ``..`` segment, not starting with ``/``); metric values must be finite numbers;
steps and timestamps are integers. Every error names the field and the offending value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from shipyard.errors import InputError

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_REQUEST_BYTES = 1024 * 1024
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_RUN_NAME_LENGTH = 250
MAX_INT64 = 2**63 - 1

_KEY = re.compile(r"^[/\w.\- :]*$")
_VALID_KEYS: set[str] = set()


def _shown(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def check_key(key: object, what: str) -> str:
    """A valid metric, param or tag key, or InputError naming it (valid keys are remembered)."""
    if isinstance(key, str) and key in _VALID_KEYS:
        return key  # type: ignore[return-value]
    if not isinstance(key, str):
        raise InputError(f"{what} key must be a string, got {type(key).__name__} {key!r}")
    if not key:
        raise InputError(f"{what} key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InputError(f"{what} key {_shown(key)} is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}")
    if not _KEY.match(key):
        raise InputError(
            f"{what} key {_shown(key)} has characters that are not allowed",
            hint="keys may contain letters, digits, underscores, dashes, periods, slashes, colons and spaces",
        )
    if key.startswith("/") or ".." in key.split("/"):
        raise InputError(f"{what} key {_shown(key)} may not start with '/' or contain a '..' segment")
    if len(_VALID_KEYS) < 100_000:
        _VALID_KEYS.add(key)
    return key


def check_value(value: object, what: str, key: str, limit: int) -> str:
    if value is None:
        raise InputError(f"{what} {key!r} has no value")
    text = str(value)
    if len(text) > limit:
        raise InputError(f"{what} {key!r} has a value of {len(text)} characters; the limit is {limit}")
    return text


def check_metric_value(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"metric {key!r} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"metric {key!r} is {number!r}; metric values must be finite numbers",
                         hint="log NaN or infinite values as a tag, or skip that step")
    return number


def check_int(value: object, field: str, *, minimum: int = -MAX_INT64) -> int:
    """An int64 (proto JSON may send it as a string of digits)."""
    if isinstance(value, bool):
        raise InputError(f"{field} must be an integer, got {value!r}")
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value.strip()):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise InputError(f"{field} must be an integer, got {type(value).__name__} {value!r}")
    if not minimum <= value <= MAX_INT64:
        raise InputError(f"{field} {value} is out of range ({minimum}..{MAX_INT64})")
    return value


def check_batch(metrics: Sequence[object], params: Mapping[str, object] | Sequence[object],
                tags: Mapping[str, object] | Sequence[object]) -> None:
    """MLflow's batch limits: 1000 metrics, 100 params, 100 tags, 1000 entities in total."""
    if len(metrics) > MAX_METRICS_PER_BATCH:
        raise InputError(f"a batch can contain at most {MAX_METRICS_PER_BATCH} metrics; got {len(metrics)}",
                         hint="split the batch (the Python API does this for you)")
    if len(params) > MAX_PARAMS_PER_BATCH:
        raise InputError(f"a batch can contain at most {MAX_PARAMS_PER_BATCH} params; got {len(params)}")
    if len(tags) > MAX_TAGS_PER_BATCH:
        raise InputError(f"a batch can contain at most {MAX_TAGS_PER_BATCH} tags; got {len(tags)}")
    total = len(metrics) + len(params) + len(tags)
    if total > MAX_ENTITIES_PER_BATCH:
        raise InputError(f"a batch can contain at most {MAX_ENTITIES_PER_BATCH} metrics, params and tags in total; got {total}")


def check_params(params: Mapping[str, object]) -> dict[str, str]:
    return {check_key(k, "param"): check_value(v, "param", k, MAX_PARAM_VALUE_LENGTH) for k, v in params.items()}


def check_tags(tags: Mapping[str, object]) -> dict[str, str]:
    return {check_key(k, "tag"): check_value(v, "tag", k, MAX_TAG_VALUE_LENGTH) for k, v in tags.items()}
