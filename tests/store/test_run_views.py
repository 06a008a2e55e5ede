"""Keyset pages of runs (shipyard.store.run_views) on SQLite and PostgreSQL: ties, runs without the
sort value, every direction; one metric's history read alone with a cap."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

from shipyard.errors import InputError
from shipyard.store import run_views as views
from shipyard.store import runs as repo
from shipyard.store.runs import LatestMetric, MetricValue
from shipyard.tracking import service


def walk(store, sort: views.Column, ascending: bool, limit: int = 4) -> list[str]:  # type: ignore[no-untyped-def]
    seen, cursor = [], None
    while True:
        with store.read() as s:
            runs, cursor = views.page_runs(s, where=None, sort=sort, ascending=ascending, cursor=cursor, limit=limit)
        seen += [r.id for r in runs]
        if cursor is None:
            return seen


def test_keyset_pages_with_ties_and_missing_values(store) -> None:  # type: ignore[no-untyped-def]
    ids = {}
    with store.write() as s:
        for i in range(11):
            rid = service.create_run(s, experiment="e", name=f"r{i}", start_time=1000 + i // 3)  # ties in threes
            if i % 4:
                repo.log_metrics(s, rid, [MetricValue("acc", float(i % 3)), MetricValue("acc", 9.0 + i, step=-1)])
                repo.log_params(s, rid, {"p": f"v{i % 2}"})
            ids[rid] = i
    for column in (views.Column("attributes", "start_time"), views.Column("metrics", "acc"),
                   views.Column("params", "p"), views.Column("metrics_max", "acc"), views.Column("attributes", "name")):
        for ascending in (True, False):
            seen = walk(store, column, ascending)
            assert sorted(seen) == sorted(ids), (column, ascending)  # every run once, none twice
            with store.read() as s:
                whole, cursor = views.page_runs(s, where=None, sort=column, ascending=ascending, cursor=None, limit=100)
            assert cursor is None and [r.id for r in whole] == seen
    for limit in (1, 2, 3):  # page ends on a run with the value, without it, and across the boundary
        assert sorted(walk(store, views.Column("metrics", "acc"), False, limit)) == sorted(ids)
    by_acc = walk(store, views.Column("metrics", "acc"), True)
    missing = [rid for rid, i in ids.items() if i % 4 == 0]
    assert sorted(by_acc[-len(missing):]) == sorted(missing)  # runs without the metric come last


def test_a_cursor_of_another_sort_or_a_forged_one_is_refused(store) -> None:  # type: ignore[no-untyped-def]
    cursor = views.encode_cursor([0, "text", "abc"])
    with store.read() as s, pytest.raises(InputError, match="for this sort"):
        views.page_runs(s, where=None, sort=views.Column("metrics", "acc"), ascending=True, cursor=cursor, limit=5)
    with pytest.raises(InputError, match="not one this page made"):
        views.decode_cursor("%%%", True)


def test_metric_series_reads_one_key_in_step_order_with_a_cap(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        rid = service.create_run(s, experiment="e")
        repo.log_metrics(s, rid, [MetricValue("loss", float(9 - i), step=9 - i) for i in range(10)]
                         + [MetricValue("other", 1.0)])
    with store.read() as s:
        steps, values = views.metric_series(s, rid, "loss", limit=5)
    assert steps == [0, 1, 2, 3, 4] and values == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_metric_envelope_keeps_each_buckets_extremes(store) -> None:  # type: ignore[no-untyped-def]
    from shipyard.tracking.downsample import downsample

    values = [float(i % 7) for i in range(5000)]
    values[1234] = 1e6  # one spike
    values[4000:4100] = [float("nan")] * 100  # a gap
    with store.write() as s:
        rid = service.create_run(s, experiment="e")
        repo.log_metrics(s, rid, [MetricValue("loss", v, step=i) for i, v in enumerate(values)])
    with store.read() as s:
        xs, ys = views.metric_envelope(s, rid, "loss", 100)
        short_x, short_y = views.metric_envelope(s, rid, "loss", 10_000)
    assert len(xs) <= 100 and xs == sorted(xs)
    spike = [x for x, y in zip(xs, ys, strict=True) if y == 1e6]
    assert len(spike) == 1 and 1234 - 50 < spike[0] <= 1234  # the spike, drawn at its bucket's first step
    assert None in ys and all(4000 <= x < 4100 for x, y in zip(xs, ys, strict=True) if y is None)
    finite = [y for y in ys if y is not None]
    assert min(finite) == 0.0 and max(finite) == 1e6
    assert short_x == list(range(5000)) and short_y[4050] is None and short_y[1234] == 1e6  # short: whole
    # the same envelope as the list downsampler over the same points, bucket for bucket
    assert max(y for y in downsample(list(range(5000)), values, 100)[1] if y is not None) == max(finite)


def _reference_envelope(points: list[tuple[int, float]], limit: int) -> tuple[list[int], list[float | None]]:
    """The envelope by its definition, in Python: n = min(limit // 2, span) buckets over the step span,
    step s in bucket (s - low) * n // span; per bucket in order, its first step with its smallest then
    largest finite value (one value when they are equal, None when the bucket holds only NaN)."""
    import math

    low, high = min(s for s, _ in points), max(s for s, _ in points)
    span = high - low + 1
    n = min(limit // 2, span)
    buckets: dict[int, list[tuple[int, float]]] = {}
    for step, value in points:
        buckets.setdefault((step - low) * n // span, []).append((step, value))
    xs: list[int] = []
    ys: list[float | None] = []
    for b in sorted(buckets):
        first = min(s for s, _ in buckets[b])
        finite = [v for _, v in buckets[b] if not math.isnan(v)]
        pair = [None] if not finite else sorted({min(finite), max(finite)})
        xs += [first] * len(pair)
        ys += pair
    return xs, ys


def test_metric_envelope_over_uneven_steps_matches_its_definition(store) -> None:  # type: ignore[no-untyped-def]
    # steps that start below zero, repeat a step, run dense with holes then sparse (squares: empty buckets),
    # and end in a bucket of NaN only
    steps = [-40, -40, *[i for i in range(-39, 1200) if i % 5 != 3], *[i * i for i in range(35, 300)], 90_001, 90_002]
    values = [float((i * 37) % 11) - 5 for i in range(len(steps))]
    values[-2:] = [float("nan"), float("nan")]
    with store.write() as s:
        rid = service.create_run(s, experiment="e")
        repo.log_metrics(s, rid, [MetricValue("loss", v, step=st) for st, v in zip(steps, values, strict=True)])
    points = list(zip(steps, values, strict=True))
    with store.read() as s:
        for limit in (2, 7, 64, 301, 1000):
            assert views.metric_envelope(s, rid, "loss", limit) == _reference_envelope(points, limit), limit
        # limit + 1 points and more are reduced; a history of exactly ``limit`` points comes back whole
        whole = views.metric_envelope(s, rid, "loss", len(steps))
        assert whole[0] == sorted(steps) and whole[1][-2:] == [None, None]
        assert views.metric_envelope(s, rid, "loss", len(steps) - 1) == _reference_envelope(points, len(steps) - 1)
        assert views.metric_envelope(s, rid, "nothing", 10) == ([], [])
    # steps as timestamps: bucket arithmetic past 32-bit integers
    far = [(i * 7_000_000_001, float(i % 5)) for i in range(500)]
    with store.write() as s:
        repo.log_metrics(s, rid, [MetricValue("far", v, step=st) for st, v in far])
    with store.read() as s:
        assert views.metric_envelope(s, rid, "far", 100) == _reference_envelope(far, 100)


def test_keys_page_of_every_run_walks_distinct_keys_in_order(store) -> None:  # type: ignore[no-untyped-def]
    # many runs sharing keys (each key once in the answer), keys with LIKE's wildcards, params and tags too
    keys = ["a_b", "a%b", "aXb", "loss", "Val_Loss", "z"]
    with store.write() as s:
        for i in range(6):
            rid = service.create_run(s, experiment="e", tags={"t": "x"})
            repo.log_params(s, rid, {f"p{j}": str(i) for j in range(i + 1)})
            repo.log_metrics(s, rid, [MetricValue(k, float(i), step=0) for k in keys[: i + 1]])
    with store.read() as s:
        assert views.keys_page(s, "metrics", limit=50) == (sorted(keys), None)
        walked, after = [], ""
        while True:  # pages of two, continuing after the last key shown
            page, more = views.keys_page(s, "metrics", after=after, limit=2)
            walked += page
            if more is None:
                break
            after = more
        assert walked == sorted(keys)
        assert views.keys_page(s, "metrics", contains="LOSS", limit=50) == (["Val_Loss", "loss"], None)
        assert views.keys_page(s, "metrics", contains="_", limit=50) == (["Val_Loss", "a_b"], None)  # not any char
        assert views.keys_page(s, "metrics", contains="%", limit=50) == (["a%b"], None)
        assert views.keys_page(s, "metrics", contains="A", after="a%b", limit=1) == (["aXb"], "aXb")
        assert views.keys_page(s, "metrics", contains="nothing", limit=5) == ([], None)
        assert views.keys_page(s, "params", limit=3) == (["p0", "p1", "p2"], "p2")
        tags, _ = views.keys_page(s, "tags", limit=50)
        assert "t" in tags and tags == sorted(set(tags))
        assert views.keys_page(s, "metrics", after="z", limit=3) == ([], None)


def test_kept_envelopes_are_reused_until_the_history_grows(store) -> None:  # type: ignore[no-untyped-def]
    long = [MetricValue("loss", float(i % 13), step=i) for i in range(300)]
    with store.write() as s:
        a = service.create_run(s, experiment="e")
        b = service.create_run(s, experiment="e")
        short = service.create_run(s, experiment="e")
        repo.log_metrics(s, a, long)
        repo.log_metrics(s, b, long[:150])
        repo.log_metrics(s, b, long[150:])  # two writes: the count is their sum
        repo.log_metrics(s, short, long[:20])
    with store.read() as s:
        found, fresh = views.kept_envelopes(s, [a, b, short, "nope"], "loss", 40)
        direct = {rid: views.metric_envelope(s, rid, "loss", 40) for rid in (a, b, short)}
    assert found == direct and "nope" not in found
    assert sorted((e.run_id, e.points) for e in fresh) == sorted([(a, 300), (b, 300)])  # short ones are not kept
    with store.write() as s:
        views.keep_envelopes(s, fresh)
    with store.read() as s:
        again, none = views.kept_envelopes(s, [a, b, short], "loss", 40)
        other_limit, computed = views.kept_envelopes(s, [a], "loss", 60)
    assert again == direct and none == []
    assert len(computed) == 1 and other_limit[a] == _envelope(store, a, 60)
    with store.write() as s:
        repo.log_metrics(s, a, [MetricValue("loss", 1e6, step=300, timestamp=7)])  # a spike after the kept envelope
        repo.log_metrics(s, a, [MetricValue("loss", 1e6, step=300, timestamp=7)])  # an exact repeat adds nothing
    with store.read() as s:
        grown, recomputed = views.kept_envelopes(s, [a], "loss", 40)
    assert 1e6 in grown[a][1] and [(e.run_id, e.points) for e in recomputed] == [(a, 301)]


def test_an_envelope_kept_from_an_older_snapshot_is_never_used(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        rid = service.create_run(s, experiment="e")
        repo.log_metrics(s, rid, [MetricValue("loss", 1.0, step=i) for i in range(100)])
    with store.read() as s:
        _, fresh = views.kept_envelopes(s, [rid], "loss", 20)
    with store.write() as s:  # a write lands between the computation and its keeping
        repo.log_metrics(s, rid, [MetricValue("loss", -5.0, step=100)])
        views.keep_envelopes(s, fresh)
    with store.read() as s:
        found, again = views.kept_envelopes(s, [rid], "loss", 20)
    assert -5.0 in found[rid][1] and len(again) == 1


def _envelope(store, run_id: str, limit: int):  # type: ignore[no-untyped-def]
    with store.read() as s:
        return views.metric_envelope(s, run_id, "loss", limit)


def test_the_migration_counts_the_points_of_histories_written_before_it(store) -> None:  # type: ignore[no-untyped-def]
    from alembic import command

    from shipyard.store.migrate import _config, upgrade

    with store.write() as s:
        rid = service.create_run(s, experiment="e")
        repo.log_metrics(s, rid, [MetricValue("loss", 1.0, step=i) for i in range(50)] + [MetricValue("acc", 0.5)])
    with store.engine.begin() as conn:  # back to the schema before the count existed
        command.downgrade(_config(conn), "0015_metric_envelopes@-1")
        assert "points" not in {c["name"] for c in inspect(conn).get_columns("latest_metrics")}
    upgrade(store)
    with store.read() as s:
        counted = dict(s.execute(select(LatestMetric.key, LatestMetric.points).where(LatestMetric.run_id == rid)).all())
        _, fresh = views.kept_envelopes(s, [rid], "loss", 20)
    assert counted == {"loss": 50, "acc": 1} and [e.points for e in fresh] == [50]
