"""``shipyard doctor``'s feature checks: the Feast repository loads, and its online store answers.

Only called when shipyard.yaml has ``features:`` (it imports Feast, 8-10 s). Each check returns a
one-line detail or raises a ShipyardError saying what is wrong and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.errors import CheckFailed, ConfigError, require_extra
from shipyard.features.repo import RepoDefinitions, check_repo, definition_objects, load_definitions

# what an online store says when it is reachable but nothing was materialized into it yet
NOT_MATERIALIZED = ("no such table", "does not exist")


def check_definitions(repo: Path) -> tuple[str, RepoDefinitions]:
    """The repository's views, listed (an error naming the file that failed to load)."""
    defs = load_definitions(check_repo(repo))
    if not defs.views:
        raise CheckFailed(f"{repo}: no feature view is defined in its Python files",
                          hint="define a FeatureView (feast init shows one), then 'shipyard features list'")
    views = ", ".join(f"{v.name} ({len(v.features)} feature{'s' if len(v.features) != 1 else ''})"
                      for v in defs.views.values())
    return f"{repo} (project {defs.project}): {views}", defs


def check_online(repo: Path) -> str:
    """Read one probe key of every view through the online store's own ``online_read``: a store that
    cannot be reached fails; a reachable one that holds nothing yet says so."""
    require_extra("feast", "feast")
    from feast import Entity, FeatureStore, FeatureView
    from feast.infra.provider import get_provider
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    try:
        store = FeatureStore(repo_path=str(repo))
    except Exception as exc:
        raise ConfigError(f"{repo / 'feature_store.yaml'}: Feast could not read it: {exc}") from exc
    kind = type(store.config.online_store).__name__.removesuffix("OnlineStoreConfig").removesuffix("Config")
    objects = definition_objects(repo)
    entities = {o.name: o for o in objects if isinstance(o, Entity)}
    views = {o.name: o for o in objects if isinstance(o, FeatureView)}
    provider = get_provider(store.config)
    empty = []
    for name, view in sorted(views.items()):
        keys = [_probe_key(entities[e], EntityKey, python_values_to_proto_values) for e in view.entities if e in entities]
        try:
            provider.online_read(store.config, view, [_join(keys, EntityKey)], None)
        except Exception as exc:
            if any(text in str(exc) for text in NOT_MATERIALIZED):
                empty.append(name)
                continue
            raise CheckFailed(f"{kind} online store of {repo} cannot be read: {type(exc).__name__}: {exc}",
                              hint="start it, or fix online_store in feature_store.yaml") from None
    detail = f"{kind} online store reachable"
    if empty:
        detail += f"; nothing materialized yet for {', '.join(empty)} (run 'shipyard features materialize')"
    return detail


def _probe_key(entity: Any, entity_key: Any, to_proto: Any) -> Any:
    probe = 0 if "INT" in entity.value_type.name else "shipyard-doctor-probe"
    return entity_key(join_keys=[entity.join_key], entity_values=to_proto([probe], entity.value_type))


def _join(keys: list[Any], entity_key: Any) -> Any:
    """One EntityKey of several entities' keys (a view keyed by more than one entity)."""
    return entity_key(join_keys=[k for key in keys for k in key.join_keys],
                      entity_values=[v for key in keys for v in key.entity_values])
