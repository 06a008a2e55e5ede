"""Point-in-time correct historical features, with a guard that no entity row is lost.

Feast's local offline store loses training rows silently (feast 0.67.0, measured in
research/feature-store-and-more.md): rows sharing (key, timestamp) collapse into one
(feast-dev/feast#6787), and a row whose timestamp precedes every value of its key is dropped instead
of coming back with nulls. Shipyard therefore joins itself: for each entity row and each view, the
latest source row of the same key whose timestamp is at or before the row's and within the view's
TTL (ties on the timestamp broken by the created timestamp, as Feast does). Rows out == rows in, in
the entity table's order; no earlier value -> nulls. ``check_complete`` is the guard, also usable
around Feast's own ``get_historical_features`` (``feast_historical``): any loss is an error naming
the lost rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import CheckFailed, InputError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.features.repo import RepoDefinitions, ViewDef

TIMESTAMP = "event_timestamp"
_ROW = "__shipyard_row"
_TS = "__shipyard_ts"
_SRC_TS = "__shipyard_src_ts"
_CREATED = "__shipyard_created"
SHOW_ROWS = 10


class RowsLost(CheckFailed):
    """A retrieval returned fewer rows than the entity table holds."""


@dataclass
class Retrieval:
    """What one retrieval read and returned."""

    rows: int
    refs: list[str]
    views: dict[str, str]  # view -> definition hash
    nulls: dict[str, int] = field(default_factory=dict)  # feature -> rows without a value in range
    entity_keys: list[str] = field(default_factory=list)  # the join keys (what serving looks up by)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "refs": self.refs, "views": self.views, "nulls": self.nulls,
                "entity_keys": self.entity_keys}


def read_table(path: Path) -> pd.DataFrame:
    """An entity table or a batch source: Parquet (a file or a folder of files) or CSV."""
    import pandas as pd

    if not path.exists():
        raise InputError(f"{path}: no such file", hint="create it, or fix the path in shipyard.yaml")
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read as {'CSV' if path.suffix == '.csv' else 'Parquet'}: {exc}") from None


def _utc(values: pd.Series, what: str) -> pd.Series:
    import pandas as pd

    try:
        stamps = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{what}: not timestamps: {exc}") from None
    missing = stamps.isna()
    if missing.any():
        rows = ", ".join(str(i + 1) for i in missing.to_numpy().nonzero()[0][:SHOW_ROWS])
        raise InputError(f"{what}: {int(missing.sum())} row(s) without a timestamp (rows {rows})",
                         hint="every entity row needs its event_timestamp")
    return stamps.astype("datetime64[ns, UTC]")


def _source_frame(view: ViewDef, features: list[str], cache: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The view's batch source with the columns the join needs, renamed by its field mapping."""
    if view.source not in cache:
        frame = read_table(Path(view.source))
        cache[view.source] = frame.rename(columns=dict(view.field_mapping)) if view.field_mapping else frame
    frame = cache[view.source]
    needed = [*view.join_keys, view.timestamp_field, *features]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise InputError(f"feature view {view.name!r}: its source {view.source} has no column(s) {', '.join(absent)}",
                         hint=f"its columns: {', '.join(map(str, frame.columns))}")
    out = frame[[*view.join_keys, *features]].copy()
    out[_SRC_TS] = _utc(frame[view.timestamp_field], f"{view.source}: {view.timestamp_field}")
    order = [_SRC_TS]
    if view.created_field and view.created_field in frame.columns:
        out[_CREATED] = _utc(frame[view.created_field].fillna(frame[view.timestamp_field]), view.created_field)
        order.append(_CREATED)
    # stable sort: among rows with one timestamp, the last (latest created) wins merge_asof's pick
    return out.sort_values(order, kind="stable")


def point_in_time(entities: pd.DataFrame, views: list[tuple[ViewDef, list[str]]]) -> pd.DataFrame:
    """The entity table with each requested feature joined as of its row's timestamp.

    Every row comes back, in order, duplicates included; a feature without a value in
    ``[ts - ttl, ts]`` for the row's key is null.
    """
    import pandas as pd

    if TIMESTAMP not in entities.columns:
        raise InputError(f"the entity table has no {TIMESTAMP!r} column",
                         hint=f"its columns: {', '.join(map(str, entities.columns))}")
    out = entities.reset_index(drop=True).copy()
    left_all = pd.DataFrame({_ROW: range(len(out)), _TS: _utc(out[TIMESTAMP], f"entity table: {TIMESTAMP}")})
    sources: dict[str, pd.DataFrame] = {}
    seen: dict[str, str] = {}
    for view, features in views:
        for name in features:
            if name in seen or name in out.columns:
                raise InputError(f"feature {view.name}:{name} would overwrite the column {name!r} "
                                 f"(from {seen.get(name, 'the entity table')})",
                                 hint="request one of them, or rename the column in the entity table")
            seen[name] = view.name
        missing = [k for k in view.join_keys if k not in out.columns]
        if missing:
            raise InputError(f"feature view {view.name!r} joins on {', '.join(view.join_keys)}; the entity table has "
                             f"no {', '.join(missing)} column", hint="add the entity key column to the entity table")
        for key in view.join_keys:
            blank = out[key].isna().to_numpy()
            if blank.any():
                rows = ", ".join(str(i + 1) for i in blank.nonzero()[0][:SHOW_ROWS])
                raise InputError(f"the entity table has {int(blank.sum())} row(s) without {key} (rows {rows})",
                                 hint=f"every entity row needs its {key} to be joined to {view.name}")
        right = _source_frame(view, features, sources)
        left = left_all.copy()
        for key in view.join_keys:
            left[key] = out[key].to_numpy()
            right[key] = right[key].astype(left[key].dtype, copy=False)
        merged = pd.merge_asof(
            left.sort_values(_TS, kind="stable"), right.drop(columns=[_CREATED], errors="ignore"),
            left_on=_TS, right_on=_SRC_TS, by=list(view.join_keys), direction="backward", allow_exact_matches=True,
            tolerance=pd.Timedelta(seconds=view.ttl_s) if view.ttl_s > 0 else None)
        merged = merged.set_index(_ROW).reindex(range(len(out)))
        for name in features:
            # an integer feature with nulls stays integer (nullable), not float
            column = merged[name]
            out[name] = column.astype("Int64") if pd.api.types.is_integer_dtype(right[name]) else column.to_numpy()
    return out


def check_complete(entities: pd.DataFrame, result: pd.DataFrame, keys: list[str] | tuple[str, ...]) -> None:
    """Raise ``RowsLost`` naming the entity rows (1-based) that ``result`` does not hold.

    Rows are matched by their keys and timestamp, as a multiset: two requested rows with the same
    (key, timestamp) need two rows back (feast-dev/feast#6787 collapses them into one).
    """

    cols = [*keys, TIMESTAMP]
    asked = entities[cols].reset_index(drop=True).copy()
    asked[TIMESTAMP] = _utc(asked[TIMESTAMP], "entity table")
    got = result[cols].copy()
    got[TIMESTAMP] = _utc(got[TIMESTAMP], "retrieval result")
    asked["__n"] = asked.groupby(cols, sort=False).cumcount()
    got["__n"] = got.groupby(cols, sort=False).cumcount()
    asked[_ROW] = range(1, len(asked) + 1)
    joined = asked.merge(got.drop_duplicates(), on=[*cols, "__n"], how="left", indicator=True)
    lost = joined[joined["_merge"] == "left_only"].sort_values(_ROW)
    if lost.empty:
        return
    dup = asked.duplicated(cols, keep=False)
    collapsed = int(lost[_ROW].isin(asked.loc[dup, _ROW]).sum())
    shown = "; ".join(f"row {int(r[_ROW])} ({', '.join(f'{c}={r[c]}' for c in cols)})"
                      for _, r in lost.head(SHOW_ROWS).iterrows())
    more = f"; and {len(lost) - SHOW_ROWS} more" if len(lost) > SHOW_ROWS else ""
    raise RowsLost(
        f"feature retrieval lost {len(lost)} of {len(asked)} entity rows ({len(result)} came back; "
        f"{collapsed} of the lost rows share their key and timestamp with another row): {shown}{more}",
        hint="retrieve with Shipyard's point-in-time join (a stage's features:), which returns every row")


def retrieve(defs: RepoDefinitions, refs: list[str], entities_path: Path, out_path: Path) -> Retrieval:
    """Join ``refs`` onto the entity table at ``entities_path`` and write Parquet to ``out_path``
    atomically (temp file, fsync, rename); the guard runs before anything is written."""
    entities = read_table(entities_path)
    views = defs.resolve(refs)
    result = point_in_time(entities, views)
    keys = list(dict.fromkeys(k for view, _ in views for k in view.join_keys))
    check_complete(entities, result, keys)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    result.to_parquet(tmp, index=False)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out_path)
    nulls = {f: int(result[f].isna().sum()) for _, feats in views for f in feats}
    return Retrieval(len(result), list(refs), {v.name: v.definition for v, _ in views}, nulls, keys)


def feast_historical(store: Any, entities: pd.DataFrame, refs: list[str]) -> pd.DataFrame:
    """Feast's own ``get_historical_features`` with Shipyard's guard: raises ``RowsLost`` naming
    the rows Feast dropped or collapsed instead of returning fewer rows silently."""
    result = store.get_historical_features(entity_df=entities, features=refs).to_df()
    views = {r.split(":", 1)[0] for r in refs}
    keys: list[str] = []
    for name in sorted(views):
        fv = store.get_feature_view(name)
        keys += [store.get_entity(e).join_key for e in fv.entities]
    check_complete(entities, result, list(dict.fromkeys(keys)))
    return result
