"""The embedded log store: what is written is found by each filter, cursors travel with the
lines, retention drops old segments and gives the space back."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import StoreError
from conveyor.model.logs import LogLabels, LogQuery
from conveyor.observe.logs.cursor import Cursor
from conveyor.observe.logs.retention import DAY, Retention
from conveyor.observe.logs.store import ROW_VALUES, LogStore, Row, flat_rows

T0 = 1_800_000_000 * 10**9  # ns


def labels(
    service: str | None,
    replica: str | None,
    release: int | None,
    container: str,
    stream: str = "stdout",
    job: int | None = None,
) -> LogLabels:
    return LogLabels(
        project="shop",
        environment="staging",
        service=service,
        replica=replica,
        release=release,
        container=container,
        stream=stream,
        job=job,
    )  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LogStore]:
    s = LogStore.open(tmp_path / "logs.db")
    yield s
    s.close()


def fill(store: LogStore) -> dict[str, int]:
    src = {
        "web1": store.source(labels("web", "web-1", 1, "c-web1")),
        "web1e": store.source(labels("web", "web-1", 1, "c-web1", "stderr")),
        "web2": store.source(labels("web", "web-2", 2, "c-web2")),
        "db": store.source(labels("db", "db-1", 1, "c-db")),
        "job": store.source(labels(None, None, None, "c-job", job=42)),
    }
    rows: list[Row] = []
    for i in range(300):
        ts = T0 + i * 1_000_000_000  # one a second
        name = ["web1", "web1e", "web2", "db", "job"][i % 5]
        level = [2, 4, None, 3, 1][i % 5]
        fields = json.dumps({"user": f"u{i % 3}", "http.status": "500" if i % 10 == 0 else "200"})
        rows.append((src[name], ts, level, f"line {i} from {name} order-{i % 4}", fields))
    store.write(rows)
    return src


def ids(records: list) -> list[int]:  # type: ignore[type-arg]
    return [r.id for r in records]


def test_search_is_newest_first_and_limited(store: LogStore) -> None:
    fill(store)
    found = store.search(LogQuery(limit=5))
    assert ids(found) == [300, 299, 298, 297, 296]
    assert found[0].message == "line 299 from job order-3"
    assert found[0].labels.job == 42
    assert found[0].ts == pytest.approx((T0 + 299 * 10**9) / 1e9)


def test_each_filter(store: LogStore) -> None:
    fill(store)

    def count(**kw: object) -> int:
        return len(store.search(LogQuery(limit=1000, **kw)))  # type: ignore[arg-type]

    assert count() == 300
    assert count(services=("web",)) == 180
    assert count(services=("db", "web")) == 240
    assert count(services=("nothing",)) == 0
    assert count(replicas=("web-2",)) == 60
    assert count(release=2) == 60
    assert count(streams=("stderr",)) == 60
    assert count(level="warning") == 120  # warning (db) and error (web1e)
    assert count(level="error") == 60
    assert count(text="order-2") == 75  # a phrase: `order 2` as adjacent words
    assert count(text="web1 order-0") == 15
    assert count(text="ord*", services=("db",)) == 60
    assert count(fields={"http.status": "500"}) == 30
    assert count(fields={"user": "u1"}, services=("web",)) == 60
    since = (T0 + 100 * 10**9) / 1e9
    until = (T0 + 199 * 10**9) / 1e9
    assert count(since=since) == 200
    assert count(since=since, until=until) == 100
    assert count(since=since, until=until, services=("db",), text="line") == 20


def test_a_literal_without_words_is_looked_for_as_it_is(store: LogStore) -> None:
    src = store.source(labels("web", "web-1", 1, "c"))
    store.write([(src, T0, None, "a -> b", None), (src, T0 + 1, None, "a b", None)])
    assert [r.message for r in store.search(LogQuery(text="->"))] == ["a -> b"]


def test_quotes_and_fts_syntax_in_the_search_text_are_words(store: LogStore) -> None:
    src = store.source(labels("web", "web-1", 1, "c"))
    store.write([(src, T0, None, 'say "AND" OR NOT near(x)', None)])
    assert len(store.search(LogQuery(text='"AND" OR NOT near(x)'))) == 1
    assert store.search(LogQuery(text="absent AND")) == []


def test_tail_gives_what_came_after(store: LogStore) -> None:
    src = fill(store)
    last = store.last_id()
    assert store.tail(LogQuery(), after=last) == []
    store.write([(src["db"], T0 + 10**12, 4, "new db line", None)])
    store.write([(src["web2"], T0 + 10**12, 2, "new web line", None)])
    got = store.tail(LogQuery(services=("db",)), after=last)
    assert [r.message for r in got] == ["new db line"]
    assert [r.message for r in store.tail(LogQuery(), after=last)] == [
        "new db line",
        "new web line",
    ]


def test_cursors_are_written_with_the_lines(store: LogStore) -> None:
    src = store.source(labels("web", "web-1", 1, "c"))
    assert store.cursor(src) == Cursor()
    store.write([(src, T0, None, "x", None)], {src: Cursor(T0, 1)})
    assert store.cursor(src) == Cursor(T0, 1)
    with pytest.raises(KeyError):  # an unknown source fails the batch ...
        store.write(
            [(src, T0 + 1, None, "y", None), (999, T0 + 2, None, "z", None)],
            {src: Cursor(T0 + 2, 1)},
        )
    # ... and neither its lines nor its cursor were stored
    assert store.cursor(src) == Cursor(T0, 1)
    assert [r.message for r in store.search(LogQuery())] == ["x"]


def test_reopening_keeps_lines_ids_sources_and_cursors(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    s = LogStore.open(path)
    src = s.source(labels("web", "web-1", 1, "c"))
    s.write([(src, T0, 2, "before", None)], {src: Cursor(T0, 1)})
    s.close()
    s = LogStore.open(path)
    assert s.source(labels("web", "web-1", 1, "c")) == src
    assert s.cursor(src) == Cursor(T0, 1)
    s.write([(src, T0 + 1, 2, "after", None)])
    assert [(r.id, r.message) for r in s.search(LogQuery())] == [(2, "after"), (1, "before")]
    s.close()


def test_a_missing_store_is_not_created_by_a_reader(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no log store"):
        LogStore.open(tmp_path / "logs.db", create=False)
    assert not (tmp_path / "logs.db").exists()


def test_the_file_is_private(tmp_path: Path) -> None:
    s = LogStore.open(tmp_path / "state" / "logs.db")
    s.close()
    assert (tmp_path / "state" / "logs.db").stat().st_mode & 0o077 == 0
    assert (tmp_path / "state").stat().st_mode & 0o077 == 0


def test_lines_of_a_gone_replica_stay_until_retention_drops_them(tmp_path: Path) -> None:
    s = LogStore.open(tmp_path / "logs.db", Retention(max_age=DAY, segment_span=3600))
    old = s.source(labels("web", "web-1", 1, "c-old"))
    s.write([(old, T0, None, "from the old replica", None)])
    now = T0 / 1e9
    # later: a new segment, a new replica; the old one's lines are still found
    s.maintain(now + 7200)
    new = s.source(labels("web", "web-2", 2, "c-new"))
    s.write([(new, T0 + 7200 * 10**9, None, "from the new replica", None)])
    assert len(s.search(LogQuery(services=("web",)))) == 2
    assert len(s.search(LogQuery(replicas=("web-1",)))) == 1
    # a day later the old segment is past retention: dropped, its pages freed
    before = s.used_bytes()
    done = s.maintain(now + DAY + 3600)
    assert done.dropped == (1,)
    assert [r.message for r in s.search(LogQuery(services=("web",)))] == ["from the new replica"]
    assert s.used_bytes() < before
    s.close()


def test_size_retention_drops_the_oldest_segments(tmp_path: Path) -> None:
    s = LogStore.open(tmp_path / "logs.db", Retention(max_bytes=400_000, segment_rows=1000))
    src = s.source(labels("web", "web-1", 1, "c"))
    now = T0 / 1e9
    for batch in range(20):
        rows: list[Row] = [
            (src, T0 + (batch * 1000 + i) * 1000, None, f"batch {batch} line {i} " + "x" * 80, None)
            for i in range(1000)
        ]
        s.write(rows)
        s.maintain(now)
    assert s.used_bytes() <= 400_000 + 1000 * 300  # at most the open segment over
    kept = s.search(LogQuery(limit=100_000))
    assert kept[0].message.startswith("batch 19 line 999")
    assert "batch 0 line" not in kept[-1].message  # the oldest went first
    segs = s.segments()
    assert [x.n for x in segs] == sorted(x.n for x in segs)
    s.close()


def test_a_time_range_in_an_old_segment_skips_the_newer_ones(tmp_path: Path) -> None:
    s = LogStore.open(tmp_path / "logs.db", Retention(segment_rows=100))
    src = s.source(labels("web", "web-1", 1, "c"))
    for batch in range(5):
        s.write(
            [(src, T0 + (batch * 100 + i) * 10**9, None, f"b{batch} {i}", None) for i in range(100)]
        )
        s.maintain(T0 / 1e9)
    found = s.search(LogQuery(since=(T0 + 150 * 10**9) / 1e9, until=(T0 + 160 * 10**9) / 1e9))
    assert [r.message for r in found] == [f"b1 {i}" for i in range(60, 49, -1)]
    s.close()


def test_compaction_keeps_every_line(tmp_path: Path) -> None:
    s = LogStore.open(tmp_path / "logs.db", Retention(segment_rows=50))
    src = s.source(labels("web", "web-1", 1, "c"))
    passes = []
    for k in range(3):
        s.write([(src, T0 + k * 100 + i, None, f"word{i % 7} k{k}", None) for i in range(50)])
        passes.append(s.maintain(T0 / 1e9))
    # each full segment is sealed, then its index merged
    assert [(p.sealed, p.optimized) for p in passes] == [(1, 1), (2, 2), (3, 3)]
    assert len(s.search(LogQuery(text="word3", limit=1000))) == len(
        [i for k in range(3) for i in range(50) if i % 7 == 3]
    )
    s.close()


def test_a_failed_first_write_leaves_the_store_writable(store: LogStore) -> None:
    src = store.source(labels("web", "web-1", 1, "c"))
    with pytest.raises(KeyError):  # the batch that would open the first segment fails
        store.write([(999, T0, None, "no such source", None)])
    assert store.write([(src, T0, None, "fine", None)]) == 1
    assert [r.message for r in store.search(LogQuery())] == ["fine"]


def test_a_reader_never_makes_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    path.touch()  # the collector has just made the file, not yet its tables
    with pytest.raises(StoreError, match="being created"):
        LogStore.open(path, create=False)
    LogStore.open(path).close()  # the writer makes it
    LogStore.open(path).close()  # and a second opening finds it made
    LogStore.open(path, create=False).close()


def test_any_text_comes_back_as_it_was_written(store: LogStore) -> None:
    src = store.source(labels("web", "web-1", 1, "c"))
    odd = [
        'quotes " and \\ backslashes',
        "tabs\tand\x1b[31mANSI\x1b[0m colours",
        "emoji 🚀 and accents café, line separators \u2028 \u2029",
        "{not json but braces} [and brackets]",
        "x" * 70_000,
    ]
    fields = '{"k":"v \\"q\\"","n":"1"}'
    store.write([(src, T0 + i, None, m, fields if i == 0 else None) for i, m in enumerate(odd)])
    got = list(reversed(store.search(LogQuery(limit=10))))
    assert [r.message for r in got] == odd
    assert got[0].fields == {"k": 'v "q"', "n": "1"}


def test_rows_in_their_flat_form_are_stored_and_found_as_rows_are(tmp_path: Path) -> None:
    """The parse worker hands rows over flat (`flat_rows`); a store written that way answers
    every filter as one written row by row, and `written_flat` says what `written` says."""
    by_rows, by_flat = (LogStore.open(tmp_path / f"{name}.db") for name in ("rows", "flat"))
    try:
        web, db = (
            [s.source(labels(name, f"{name}-1", 1, f"c-{name}")) for s in (by_rows, by_flat)]
            for name in ("web", "db")
        )
        assert web[0] == web[1] and db[0] == db[1]
        rows: list[Row] = [
            (
                (web if i % 3 else db)[0],
                T0 + i * 10**9,
                [None, 2, 4][i % 3],
                f"line {i} word{i % 4}",
                json.dumps({"user": f"u{i % 2}"}) if i % 2 else None,
            )
            for i in range(60)
        ]
        tags = {source: by_flat.tag(source) for source in (web[1], db[1])}
        flat = flat_rows(rows, tags)
        assert len(flat) == len(rows) * ROW_VALUES
        assert by_rows.write(rows[:40], {web[0]: Cursor(7, 1)}) == 40
        assert by_flat.write_flat(flat[: 40 * ROW_VALUES], {web[1]: Cursor(7, 1)}) == 40
        last = by_flat.write_flat(flat[40 * ROW_VALUES :])
        assert by_rows.written(rows[40:], 41) == by_flat.written_flat(flat[40 * ROW_VALUES :], 41)
        by_rows.write(rows[40:])
        assert last == 60 and by_flat.cursor(web[1]) == Cursor(7, 1)
        for query in (
            LogQuery(limit=1000),
            LogQuery(services=("db",)),
            LogQuery(level="error"),
            LogQuery(text="word2", services=("web",)),
            LogQuery(fields={"user": "u1"}, level="info"),
            LogQuery(since=(T0 + 10 * 10**9) / 1e9, until=(T0 + 20 * 10**9) / 1e9),
        ):
            found = by_flat.search(query)
            assert found == by_rows.search(query), query
            assert found, query  # each filter finds something: the comparison says something
    finally:
        by_rows.close()
        by_flat.close()


def test_a_host_filter_finds_the_lines_of_the_containers_that_ran_there(store: LogStore) -> None:
    on_h1 = store.source(labels("web", "web-1-1", 1, "c1").model_copy(update={"host": "h1"}))
    on_h2 = store.source(labels("web", "web-1-2", 1, "c2").model_copy(update={"host": "h2"}))
    here = store.source(labels("web", "web-1", 1, "c3"))
    store.write([(on_h1, T0, None, "a", None), (on_h2, T0 + 1, None, "b", None)])
    store.write([(here, T0 + 2, None, "c", None)])
    assert [r.message for r in store.search(LogQuery(hosts=("h2",)))] == ["b"]
    assert [r.message for r in store.search(LogQuery(hosts=("h1", "h2")))] == ["b", "a"]
    assert store.search(LogQuery(hosts=("h3",))) == []
    assert [r.labels.host for r in store.search(LogQuery())] == [None, "h2", "h1"]


def _as_version_1(path: Path) -> None:
    """The file as Conveyor wrote it before sources had a host."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("ALTER TABLE sources DROP COLUMN host")
    conn.execute("PRAGMA user_version=1")
    conn.close()


def test_a_version_1_store_is_read_as_it_is_and_upgraded_by_its_writer(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    first = LogStore.open(path)
    src = first.source(labels("web", "web-1", 1, "c1"))
    first.write([(src, T0, None, "before the upgrade", None)])
    first.close()
    _as_version_1(path)
    reader = LogStore.open(path, create=False)  # `conveyor logs` while an older agent writes
    try:
        (old,) = reader.search(LogQuery())
        assert (old.message, old.labels.host) == ("before the upgrade", None)
        assert reader.search(LogQuery(hosts=("h1",))) == []
    finally:
        reader.close()
    writer = LogStore.open(path)  # the collector of this version
    try:
        on_h1 = writer.source(labels("web", "web-1-1", 2, "c2").model_copy(update={"host": "h1"}))
        writer.write([(on_h1, T0 + 1, None, "after it", None)])
        assert [(r.message, r.labels.host) for r in writer.search(LogQuery())] == [
            ("after it", "h1"),
            ("before the upgrade", None),
        ]
    finally:
        writer.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()
