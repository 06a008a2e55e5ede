"""Optuna studies kept beside the project's store, created under the store's schema lock.

Optuna's RDB storage creates its tables (and its own alembic version table) on first use, and
several workers opening a fresh study at once race on that: measured, four workers on a fresh
SQLite study crashed one in four (``table study_user_attributes already exists``). Here every open
runs under ``shipyard.store.migrate.schema_lock``, so concurrent workers wait instead of racing.

Where: with the embedded store, ``sweeps.db`` in the project's state folder (a sibling of
``shipyard.db``: Optuna's alembic table would collide with ours in one file); with PostgreSQL, the
schema ``shipyard_optuna`` of the same database.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from shipyard.errors import UsageError

PG_SCHEMA = "shipyard_optuna"
SAMPLERS = ("tpe", "random", "grid")


def storage_url(store_url: str, state_dir: Path) -> tuple[str, dict[str, Any]]:
    """Optuna's storage URL and engine options for a project's store URL."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{state_dir / 'sweeps.db'}", {"connect_args": {"timeout": 60}}
    return store_url, {"connect_args": {"options": f"-csearch_path={PG_SCHEMA}"}}


def open_study(store: Any, state_dir: Path, name: str, *, direction: str = "maximize", sampler: str = "tpe",
               seed: int | None = None, grid_axes: dict[str, list[Any]] | None = None, create: bool = True) -> Any:
    """The Optuna study ``name`` (created when missing and ``create``), safe to call from many processes."""
    import optuna
    from sqlalchemy import text

    from shipyard.store.migrate import schema_lock

    optuna.logging.set_verbosity(logging.WARNING)
    url, engine_kwargs = storage_url(store.url, state_dir)
    with schema_lock(store, state_dir):
        if store.dialect == "postgresql":
            with store.engine.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}"))
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        if not create:
            try:
                return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(sampler, seed, grid_axes))
            except KeyError:
                raise UsageError(f"no sweep named {name!r}", hint="shipyard sweep status lists the sweeps") from None
        return optuna.create_study(study_name=name, storage=storage, direction=direction, load_if_exists=True,
                                   sampler=make_sampler(sampler, seed, grid_axes),
                                   pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))


def make_sampler(kind: str, seed: int | None, grid_axes: dict[str, list[Any]] | None) -> Any:
    """Optuna's sampler for ``kind`` (tpe, random, grid: grid needs every dimension to be a choice)."""
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        if grid_axes is None:
            raise UsageError("--sampler grid needs every swept param to be a list of values",
                             hint="-p train.depth=[2,4,8] or -p train.kernel=choice(rbf,linear)")
        return _grid_sampler(grid_axes, seed)
    raise UsageError(f"--sampler {kind!r}: expected one of {', '.join(SAMPLERS)}")


def _grid_sampler(axes: dict[str, list[Any]], seed: int | None) -> Any:
    """Optuna's grid sampler, without its stop at exhaustion: that ``study.stop()`` only works inside
    ``study.optimize``, and a sweep asks and tells itself (it stops after its number of trials; a
    repeated grid point restores from the run cache)."""
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return GridSampler(axes, seed=seed)


def study_names(store: Any, state_dir: Path) -> list[str]:
    """The names of every sweep's study (empty when no sweep ran yet)."""
    import optuna
    from sqlalchemy import inspect

    from shipyard.store.migrate import schema_lock

    url, engine_kwargs = storage_url(store.url, state_dir)
    if url.startswith("sqlite") and not (state_dir / "sweeps.db").exists():
        return []
    if store.dialect == "postgresql" and not inspect(store.engine).has_table("studies", schema=PG_SCHEMA):
        return []
    with schema_lock(store, state_dir):
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    return [summary.study_name for summary in optuna.get_all_study_summaries(storage, include_best_trial=False)]
