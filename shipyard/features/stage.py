"""What the pipeline runner asks of a stage that reads features.

* ``fingerprint_part``: the stage's feature inputs (refs, each used view's definition hash, the
  content ids of those views' sources), so that a changed definition or source re-runs exactly the
  stages that use that view. From the definitions cache: no Feast import while nothing changed.
* ``retrieve_for_stage``: the guarded point-in-time retrieval into the stage's ``out``.
* ``record_for_stage``: the result becomes a dataset version read by the stage's run, and the run is
  tagged with the views and their definition hashes (what ``models lineage`` shows).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError
from shipyard.features.repo import RepoDefinitions, definitions
from shipyard.features.retrieval import Retrieval, retrieve
from shipyard.project import CONFIG_NAME

LINEAGE_TAG = "shipyard.features"

# {root-relative path: content id or None} for many paths at once (the pipeline's hash cache)
HashMany = Callable[[list[str]], Mapping[str, Any]]


def repo_of(root: Path) -> Path:
    """The Feast repository named by shipyard.yaml's ``features:`` (an error when it is absent);
    validates the whole config (~0.16 s): the pipeline passes the repo its loader cached instead."""
    from shipyard.config import load_config

    config = load_config(root / CONFIG_NAME)
    return repo_path(root, config.features.repo if config.features is not None else None)


def repo_path(root: Path, repo: str | None) -> Path:
    """The folder of ``features.repo`` (None: shipyard.yaml has no features section, an error)."""
    if repo is None:
        raise ConfigError(f"{root / CONFIG_NAME}: a stage declares features: but there is no top-level features: "
                          "section naming the Feast repository", hint="add  features: feature_repo  to shipyard.yaml")
    return (root / repo).resolve()


def load(root: Path, state_dir: Path, repo: Path | None = None) -> RepoDefinitions:
    """The project's feature definitions (cached under the state folder); ``repo`` defaults to the
    one shipyard.yaml names (read with ``repo_of``)."""
    return definitions(repo if repo is not None else repo_of(root), state_dir / "features")


def fingerprint_part(defs: RepoDefinitions, root: Path, refs: Sequence[str], hash_many: HashMany) -> dict[str, Any]:
    """The feature inputs of a stage, in canonical form (part of its fingerprint document)."""
    views = defs.resolve(list(refs))
    inside: dict[str, str] = {}
    outside: dict[str, str | None] = {}
    for view, _ in views:
        source = Path(view.source)
        try:
            inside[view.name] = source.relative_to(root).as_posix()
        except ValueError:  # outside the project: hashed here, without the project's stat cache
            outside[view.name] = _hash_outside(source)
    hashed = hash_many(sorted(set(inside.values())))
    sources: dict[str, str | None] = {}
    for name, rel in inside.items():
        found = hashed.get(rel)
        sources[name] = getattr(found, "oid", found)
    sources.update(outside)
    return {"refs": sorted(refs), "views": {v.name: v.definition for v, _ in views}, "sources": dict(sorted(sources.items()))}


def _hash_outside(source: Path) -> str | None:
    """The content id of a source outside the project: a file's hash, a folder's manifest id
    (every file's content and name), None when it does not exist."""
    from shipyard.hashing import Hasher, hash_file

    if source.is_file():
        return hash_file(source)
    if source.is_dir():
        return Hasher(source.parent).manifest(source.name).oid
    return None


def retrieve_for_stage(defs: RepoDefinitions, root: Path, refs: Sequence[str], entities: str, out: str) -> Retrieval:
    """Write the stage's features to ``out`` (root-relative), every entity row kept."""
    return retrieve(defs, list(refs), root / entities, root / out)


def record_for_stage(store: Any, objects: Any, root: Path, run_id: str, out: str, info: Mapping[str, Any]) -> str:
    """Version ``out`` as a dataset, link it to the stage's run, tag the run with ``info`` (the refs,
    views and definition hashes: ``Retrieval.to_dict()`` or the fingerprint part); returns the
    dataset version's ref."""
    from shipyard.data.versions import add_dataset, record_run_inputs
    from shipyard.hashing import Hasher
    from shipyard.store import runs

    # the executor stores the out's content with the stage's other outs: no second copy here
    added = add_dataset(store, objects, Hasher(root), out, keep_content=False)
    with store.write() as session:
        record_run_inputs(session, run_id, [added.version])
        runs.set_tags(session, run_id, {LINEAGE_TAG: json.dumps({**info, "dataset": added.version.ref},
                                                               sort_keys=True)})
    return added.version.ref
