"""A project with its store, object store and hasher opened on first use.

Interfaces (cli, server) and the in-stage tracking API build one of these; services receive the
pieces they need (a Store, an ObjectStore, a Hasher) as arguments.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING

from shipyard.hashing import Hasher, StatCache
from shipyard.project import Project, find_project, ignore_state_dir

if TYPE_CHECKING:
    from shipyard.objects import ObjectStore
    from shipyard.store import Store


class Workspace:
    """Lazy handles on everything a project owns; nothing heavy is imported until used."""

    def __init__(self, project: Project) -> None:
        self.project = project

    @classmethod
    def discover(cls, start: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(find_project(start))

    @cached_property
    def store(self) -> Store:
        from shipyard.store import open_store

        store = open_store(self.project.state_dir)
        ignore_state_dir(self.project)  # the store may just have created the state folder
        return store

    @cached_property
    def objects(self) -> ObjectStore:
        from shipyard.objects import ObjectStore

        return ObjectStore.open(self.project.objects_location)

    @cached_property
    def hasher(self) -> Hasher:
        return Hasher(self.project.root, StatCache(self.project.stat_cache_path))

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        if "hasher" in self.__dict__:
            self.hasher.cache.close()
