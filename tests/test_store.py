"""The call-state store contract: versioned writes, restarts, and no lost update under
threads or processes, on both backends (real SQLite files and a real Redis); then what
only SQLite has (WAL, the file, its URLs)."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.store import (
    CallStore,
    RedisCallStore,
    SQLiteCallStore,
    StaleWriteError,
    Stored,
    StoreError,
    StoreOptions,
    StoreUnavailableError,
    open_store,
)

CALLER = {"from": "+15551234567", "vars": {"accountNumber": "3434"}, "leg": 1}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "calls.sqlite3"


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, db_path: Path) -> tuple[str, StoreOptions]:
    """The URL and options of a fresh, empty store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{db_path}", StoreOptions()
    url: str = request.getfixturevalue("redis_url")
    options: StoreOptions = request.getfixturevalue("redis_options")
    return url, options


@pytest.fixture
def store(backend: tuple[str, StoreOptions]) -> Iterator[CallStore]:
    with open_store(*backend) as opened:
        yield opened


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[CallStore]:
    with SQLiteCallStore(str(db_path)) as opened:
        yield opened


def increment(store: CallStore, call_id: str, times: int) -> int:
    """Read-modify-write ``times`` increments, retrying on conflict; returns the retries."""
    retries = 0
    for _ in range(times):
        while True:
            current = store.get(call_id)
            assert current is not None
            data = {"count": current.data["count"] + 1}
            try:
                store.update(call_id, data, expected_version=current.version, active=True)
                break
            except StaleWriteError:
                retries += 1
    return retries


def increment_in_process(
    url: str, options: StoreOptions, call_id: str, times: int, barrier: Any
) -> None:
    """A 'worker process': opens its own store at the same moment as the others."""
    barrier.wait(timeout=20)
    store = open_store(url, options)
    try:
        with contextlib.suppress(StaleWriteError):
            store.create(call_id, {"count": 0})
        increment(store, call_id, times)
    finally:
        store.close()


# Basic operations


def test_create_then_get_round_trip(store: CallStore):
    before = time.time()
    created = store.create("CA1", CALLER)

    assert created == Stored("CA1", CALLER, 1, True, created.updated_at)
    assert before <= created.updated_at <= time.time()
    assert store.get("CA1") == created
    assert store.get("CA-unknown") is None


def test_returned_data_is_a_copy_of_what_was_saved(store: CallStore):
    data: dict[str, Any] = {"n": 1, 2: "int keys become strings, as in JSON"}
    created = store.create("CA1", data)
    data["n"] = 99

    assert created.data == {"n": 1, "2": "int keys become strings, as in JSON"}
    assert store.get("CA1") == created


def test_create_inactive(store: CallStore):
    assert store.create("CA1", {}, active=False).active is False
    got = store.get("CA1")
    assert got is not None
    assert got.active is False


def test_create_twice_is_a_stale_write(store: CallStore):
    store.create("CA1", {"first": True})

    with pytest.raises(StaleWriteError, match=r"CA1.*already exists"):
        store.create("CA1", {"second": True})
    got = store.get("CA1")
    assert got is not None
    assert got.data == {"first": True}


def test_update_with_the_right_version_bumps_it(store: CallStore):
    created = store.create("CA1", {"step": "dialing"})

    updated = store.update("CA1", {"step": "talking"}, expected_version=1, active=True)
    assert updated.version == 2
    assert updated.data == {"step": "talking"}
    assert updated.updated_at >= created.updated_at
    final = store.update("CA1", {"step": "done"}, expected_version=2, active=False)
    assert final.version == 3
    assert store.get("CA1") == final


def test_update_with_a_stale_version_changes_nothing(store: CallStore):
    store.create("CA1", {"step": "dialing"})
    store.update("CA1", {"step": "talking"}, expected_version=1, active=True)
    before = store.get("CA1")

    with pytest.raises(StaleWriteError, match=r"CA1.*version 2, not 1"):
        store.update("CA1", {"step": "lost"}, expected_version=1, active=False)
    assert store.get("CA1") == before


def test_update_of_a_missing_id_is_a_stale_write(store: CallStore):
    with pytest.raises(StaleWriteError, match=r"CA404.*does not exist"):
        store.update("CA404", {}, expected_version=1, active=True)
    assert store.get("CA404") is None


def test_bad_arguments_are_rejected_before_writing(store: CallStore):
    with pytest.raises(ValueError, match="call_id"):
        store.create("", {})
    with pytest.raises(TypeError, match="dict"):
        store.create("CA1", ["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.create("CA1", {"not json": {1, 2}})
    with pytest.raises(ValueError, match="JSON"):
        store.create("CA1", {"nan": float("nan")})
    with pytest.raises(ValueError, match="limit"):
        store.active_ids(-1)
    with pytest.raises(ValueError, match="older_than_seconds"):
        store.purge(-1)
    assert store.get("CA1") is None


def test_active_ids_are_active_only_oldest_update_first(store: CallStore):
    for call_id in ("CA1", "CA2", "CA3", "CA4"):
        store.create(call_id, {})
    store.create("CA5", {}, active=False)
    store.update("CA1", {}, expected_version=1, active=True)  # now the newest
    store.update("CA3", {}, expected_version=1, active=False)  # ended

    assert store.active_ids() == ["CA2", "CA4", "CA1"]
    assert store.active_ids(limit=2) == ["CA2", "CA4"]
    assert store.active_ids(limit=0) == []


def test_recent_is_newest_write_first_active_or_not(store: CallStore):
    store.create("CA1", {"n": 1})
    store.create("CA2", {"n": 2}, active=False)
    store.create("CA3", {"n": 3})
    store.create("CA4", {"n": 4}, active=False)
    time.sleep(0.01)
    store.update("CA1", {"n": 10}, expected_version=1, active=False)  # ended: the newest
    time.sleep(0.01)
    store.update("CA2", {"n": 20}, expected_version=1, active=True)  # active again

    history = store.recent()
    assert [(r.call_id, r.active, r.data["n"]) for r in history] == [
        ("CA2", True, 20),
        ("CA1", False, 10),
        ("CA4", False, 4),
        ("CA3", True, 3),
    ]
    assert [r.call_id for r in store.recent(limit=3)] == ["CA2", "CA1", "CA4"]
    assert store.recent(limit=0) == []
    assert [r.call_id for r in store.recent(since=history[1].updated_at)] == ["CA2", "CA1"]
    assert store.get("CA2") == history[0]


def test_a_file_with_the_old_history_index_loses_it_and_keeps_its_records(db_path: Path):
    with SQLiteCallStore(str(db_path)) as store:
        store.create("CA1", CALLER)
        store.create("CA2", {}, active=False)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE INDEX calls_updated_at ON calls (updated_at)")  # as files once had
    conn.commit()
    conn.close()

    with SQLiteCallStore(str(db_path)) as store:
        assert [r.call_id for r in store.recent()] == ["CA2", "CA1"]
        assert store.active_ids() == ["CA1"]
    conn = sqlite3.connect(db_path)
    indexes = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
    }
    conn.close()
    assert "calls_updated_at" not in indexes
    assert "calls_active_updated_at" in indexes


def test_purge_removes_only_records_not_written_for_that_long(store: CallStore):
    store.create("old-active", {})
    store.create("old-ended", {}, active=False)
    store.create("old-then-updated", {})
    time.sleep(0.1)
    fresh = store.create("fresh", {})
    store.update("old-then-updated", {}, expected_version=1, active=True)

    # A threshold half-way between the two groups of writes.
    assert store.purge(time.time() - fresh.updated_at + 0.05) == 2
    assert store.get("old-active") is None
    assert store.get("old-ended") is None
    assert store.get("fresh") is not None
    assert store.active_ids() == ["fresh", "old-then-updated"]
    assert store.purge(3600) == 0
    time.sleep(0.01)
    assert store.purge(0) == 2
    assert store.active_ids() == []


# The file


def test_the_file_is_in_wal_mode_with_the_documented_schema(sqlite_store: CallStore, db_path: Path):
    sqlite_store.create("CA1", CALLER)
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        columns = [(row[1], row[2], row[3]) for row in raw.execute("PRAGMA table_info(calls)")]
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(calls)")}
        (text,) = raw.execute("SELECT data FROM calls").fetchone()
    raw.close()

    assert columns == [
        ("call_id", "TEXT", 0),
        ("version", "INTEGER", 1),
        ("active", "INTEGER", 1),
        ("updated_at", "REAL", 1),
        ("data", "TEXT", 1),
    ]
    assert "calls_active_updated_at" in indexes
    assert "calls_updated_at" not in indexes  # one index to update per write
    assert text == '{"from":"+15551234567","vars":{"accountNumber":"3434"},"leg":1}'


def test_data_survives_a_worker_restart(backend: tuple[str, StoreOptions]):
    first = open_store(*backend)
    first.create("CA1", CALLER)
    saved = first.update("CA1", {"step": 2}, expected_version=1, active=False)
    first.close()

    with open_store(*backend) as second:
        assert second.get("CA1") == saved
        assert second.active_ids() == []


def test_close_closes_every_threads_connection(db_path: Path):
    store = SQLiteCallStore(str(db_path))
    store.create("CA1", {})
    worker = threading.Thread(target=store.get, args=("CA1",))
    worker.start()
    worker.join()

    store.close()
    store.close()  # idempotent
    # SQLite removes the WAL file when the last connection to the database closes.
    assert not Path(f"{db_path}-wal").exists()
    with pytest.raises(StoreError, match="closed"):
        store.get("CA1")


def test_closed_store_refuses_calls(store: CallStore):
    store.create("CA1", {})
    store.close()
    store.close()  # idempotent

    with pytest.raises(StoreError, match="closed"):
        store.get("CA1")
    with pytest.raises(StoreError, match="closed"):
        store.create("CA2", {})


def test_a_corrupt_row_names_the_call_not_the_data(sqlite_store: CallStore, db_path: Path):
    store = sqlite_store
    store.create("CA-good", {})
    with sqlite3.connect(db_path) as raw:
        raw.execute("INSERT INTO calls VALUES ('CA-bad', 1, 1, 0, '{\"from\": \"+15551234567\"')")
        raw.execute("INSERT INTO calls VALUES ('CA-list', 1, 1, 0, '[\"+15551234567\"]')")
    raw.close()

    for call_id in ("CA-bad", "CA-list"):
        with pytest.raises(StoreError, match=call_id) as caught:
            store.get(call_id)
        assert "5551234567" not in str(caught.value)
        assert caught.value.__cause__ is None
    assert store.get("CA-good") is not None


def test_a_path_that_cannot_be_opened_is_unavailable(tmp_path: Path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    not_a_database = tmp_path / "junk.sqlite3"
    not_a_database.write_bytes(b"this is not an SQLite database file, at all" * 100)

    for path in (tmp_path, a_file / "calls.sqlite3", not_a_database):
        with pytest.raises(StoreUnavailableError, match="cannot open") as caught:
            SQLiteCallStore(str(path))
        assert str(path) in str(caught.value)


def test_the_parent_directory_is_created(tmp_path: Path):
    path = tmp_path / "a" / "b" / "calls.sqlite3"
    with SQLiteCallStore(str(path)) as store:
        store.create("CA1", {})
    assert path.is_file()


# Concurrency


def test_threads_lose_no_update(store: CallStore):
    store.create("CA1", {"count": 0})
    errors: list[BaseException] = []

    def work() -> None:
        try:
            increment(store, "CA1", 50)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert errors == []
    final = store.get("CA1")
    assert final is not None
    assert final.data == {"count": 200}
    assert final.version == 201


def test_processes_lose_no_update(backend: tuple[str, StoreOptions]):
    url, options = backend  # for SQLite, sqlite:////tmp/...: the path is absolute
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    # The file does not exist yet: the three also race to create it and its schema.
    workers = [
        context.Process(target=increment_in_process, args=(url, options, "CA1", 50, barrier))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    with open_store(url, options) as store:
        final = store.get("CA1")
    assert final is not None
    assert final.data == {"count": 150}
    assert final.version == 151


def test_memory_store_is_shared_by_threads_and_private_to_the_store():
    with open_store("sqlite://:memory:") as store, open_store("sqlite://:memory:") as other:
        store.create("CA1", {"count": 0})
        threads = [threading.Thread(target=increment, args=(store, "CA1", 25)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)

        final = store.get("CA1")
        assert final is not None
        assert final.data == {"count": 50}
        assert other.get("CA1") is None


# open_store


@pytest.mark.parametrize(
    ("url", "relative"),
    [
        ("sqlite:///calls.sqlite3", "calls.sqlite3"),
        ("sqlite:///state/calls.sqlite3", "state/calls.sqlite3"),
        ("  SQLite:///state/calls.sqlite3\n", "state/calls.sqlite3"),
    ],
)
def test_open_store_relative_path(
    url: str, relative: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    with open_store(url) as store:
        assert isinstance(store, SQLiteCallStore)
        assert store.path == str(tmp_path / relative)
        store.create("CA1", {})
    assert (tmp_path / relative).is_file()


def test_open_store_absolute_path(tmp_path: Path):
    path = tmp_path / "abs" / "calls.sqlite3"
    assert str(path).startswith("/")

    with open_store("sqlite:///" + str(path)) as store:
        assert isinstance(store, SQLiteCallStore)
        assert store.path == str(path)
        store.create("CA1", {})
    assert path.is_file()


def test_open_store_memory():
    with open_store("sqlite://:memory:") as store:
        assert isinstance(store, SQLiteCallStore)
        store.create("CA1", {})
        assert store.get("CA1") is not None


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "rediss://:pw@cache.example.com:6380/0"]
)
def test_open_store_redis_connects_lazily_and_hides_the_password(url: str):
    # Nothing listens there: opening must not connect (gunicorn forks after create_app).
    with open_store(url, StoreOptions(key_prefix="tenant-a:")) as store:
        assert isinstance(store, RedisCallStore)
        assert store.prefix == "tenant-a:"
        assert "pw" not in repr(store)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "calls.sqlite3",
        "/var/lib/adapter/calls.sqlite3",
        "sqlite:calls.sqlite3",
        "sqlite://",
        "sqlite:///",
        "sqlite:////",
        "sqlite://host/calls.sqlite3",
        "sqlite:///:memory:",
        "sqlite:///state/",
        "sqlite:///calls.sqlite3?mode=ro",
        "sqlite:///calls.sqlite3#x",
        "postgres://user:hunter2@db/calls",
        "file:///calls.sqlite3",
    ],
)
def test_open_store_rejects_other_urls_naming_store_url(url: str):
    with pytest.raises(ValueError, match="STORE_URL") as caught:
        open_store(url)
    message = str(caught.value)
    assert "sqlite:///relative/path.sqlite3" in message
    assert "sqlite:////absolute/path.sqlite3" in message
    assert "sqlite://:memory:" in message
    assert "rediss://" in message
    assert "hunter2" not in message
