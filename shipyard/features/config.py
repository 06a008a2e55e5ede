"""The ``features:`` sections of shipyard.yaml (pydantic models only: no Feast import here).

Top level::

    features:
      repo: feature_repo          # a folder holding feature_store.yaml (a plain string works too)
      serve:                      # gateway enrichment (optional)
        entity_key: driver_id
        refs: [driver_stats:conv_rate, driver_stats:avg_daily_trips]
        max_age: 2h               # older values count as missing (Feast's online read ignores TTL)
        on_missing: reject        # or: default (then every ref needs a value in defaults)
        defaults: {conv_rate: 0.0}

In a stage::

    train:
      cmd: python train.py
      features: {refs: [driver_stats:conv_rate], entities: data/labels.parquet, out: data/train.parquet}

``shipyard.config`` imports this module, so it may import nothing above the foundations.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from shipyard.durations import parse_duration

REF = re.compile(r"^[A-Za-z_][\w-]*:[A-Za-z_][\w-]*$")


def _check_ref(value: str) -> str:
    if not REF.fullmatch(value):
        raise ValueError(f"a feature reference is written view:feature (e.g. driver_stats:conv_rate), got {value!r}")
    return value


def _age(value: str | float) -> str | float:
    if parse_duration(value) <= 0:
        raise ValueError("max_age must be above 0")
    return value


FeatureRef = Annotated[str, AfterValidator(_check_ref)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def feature_name(ref: str) -> str:
    """``driver_stats:conv_rate`` -> ``conv_rate`` (the column the model sees)."""
    return ref.split(":", 1)[1]


class ServeFeatures(_Frozen):
    """``features.serve``: what the gateway merges into a request that carries the entity key."""

    entity_key: str
    refs: list[FeatureRef] = Field(min_length=1)
    max_age: Annotated[str | float, AfterValidator(_age)] | None = None
    on_missing: Literal["reject", "default"] = "reject"
    defaults: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _defaults_known(self) -> ServeFeatures:
        names = [feature_name(r) for r in self.refs]
        unknown = sorted(set(self.defaults) - set(names))
        if unknown:
            raise ValueError(f"defaults name features not in refs: {', '.join(unknown)} (refs give {', '.join(names)})")
        if self.on_missing == "default":
            lacking = [n for n in names if n not in self.defaults]
            if lacking:
                raise ValueError(f"on_missing: default needs a value in defaults for {', '.join(lacking)}")
        return self

    @property
    def max_age_s(self) -> float | None:
        return None if self.max_age is None else parse_duration(self.max_age)


class FeaturesSection(_Frozen):
    """The top-level ``features`` section: where the Feast repository is, and serving options."""

    repo: str = "feature_repo"
    serve: ServeFeatures | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # ``features: feature_repo`` is the short form of ``features: {repo: feature_repo}``
        return {"repo": value} if isinstance(value, str) else value

    @field_validator("repo")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("repo: give the folder holding feature_store.yaml, e.g. feature_repo")
        return value


class StageFeatures(_Frozen):
    """A stage's ``features``: the refs it reads, its entity table and where the joined rows go."""

    refs: list[FeatureRef] = Field(min_length=1)
    entities: str
    out: str

    @field_validator("out")
    @classmethod
    def _parquet(cls, value: str) -> str:
        if not value.endswith(".parquet"):
            raise ValueError(f"out: the retrieved features are written as Parquet; name a .parquet file, got {value!r}")
        return value
