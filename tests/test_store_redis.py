"""What only the Redis store has: its key layout, expiry, prefixes, TLS option, and how it
behaves when Redis is down, hung or restarted (on a real redis-server)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import redis

from adapter.asterisk.settings import WorkerSettings
from adapter.config import EnvReader
from adapter.store import (
    RedisCallStore,
    StaleWriteError,
    StoreError,
    StoreOptions,
    StoreUnavailableError,
    open_store,
    read_store_url,
)
from adapter.web import WebSettings
from tests.redis_server import RedisServer, free_port

CALLER = {"from": "+15551234567", "vars": {"accountNumber": "3434"}}


def keys(server_url: str, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` with its type, as Redis holds them."""
    with redis.Redis.from_url(server_url, decode_responses=True) as raw:
        return {key: raw.type(key) for key in raw.scan_iter(f"{prefix}*")}


def test_one_hash_per_call_and_two_indexes_under_the_prefix(
    redis_url: str, redis_options: StoreOptions
):
    prefix = redis_options.key_prefix
    with open_store(redis_url, redis_options) as store:
        store.create("CA1", CALLER)
        store.create("CA2", {}, active=False)

    assert keys(redis_url, prefix) == {
        f"{prefix}call:CA1": "hash",
        f"{prefix}call:CA2": "hash",
        f"{prefix}active": "zset",
        f"{prefix}recent": "zset",
    }
    with redis.Redis.from_url(redis_url, decode_responses=True) as raw:
        record = raw.hgetall(f"{prefix}call:CA1")
        assert raw.zrange(f"{prefix}active", 0, -1) == ["CA1"]
        assert raw.zrange(f"{prefix}recent", 0, -1) == ["CA1", "CA2"]
    assert record["v"] == "1"
    assert record["a"] == "1"
    assert record["d"] == '{"from":"+15551234567","vars":{"accountNumber":"3434"}}'


def test_records_expire_after_the_retention_period(redis_url: str, redis_options: StoreOptions):
    options = StoreOptions(key_prefix=redis_options.key_prefix, retention_hours=2)
    key = f"{options.key_prefix}call:CA1"
    with open_store(redis_url, options) as store, store_client(redis_url) as raw:
        store.create("CA1", {})
        assert 7190 <= raw.ttl(key) <= 7200
        raw.expire(key, 1000)
        store.update("CA1", {}, expected_version=1, active=True)  # each write re-arms it
        assert raw.ttl(key) > 7000


def test_an_expired_record_leaves_every_listing(redis_url: str, redis_options: StoreOptions):
    with open_store(redis_url, redis_options) as store, store_client(redis_url) as raw:
        store.create("CA-gone", {})
        store.create("CA-kept", {})
        raw.delete(f"{redis_options.key_prefix}call:CA-gone")  # as expiry does

        assert store.get("CA-gone") is None
        assert [record.call_id for record in store.recent()] == ["CA-kept"]
        with pytest.raises(StaleWriteError, match="does not exist"):
            store.update("CA-gone", {}, expected_version=1, active=False)


def test_index_entries_older_than_the_retention_are_trimmed(
    redis_url: str, redis_options: StoreOptions
):
    options = StoreOptions(key_prefix=redis_options.key_prefix, retention_hours=1)
    prefix = options.key_prefix
    with open_store(redis_url, options) as store, store_client(redis_url) as raw:
        # An entry whose record expired long ago, as a crashed writer could leave it.
        raw.zadd(f"{prefix}active", {"CA-old": time.time() - 7200})
        raw.zadd(f"{prefix}recent", {"CA-old": time.time() - 7200})
        assert store.active_ids() == []
        store.create("CA-new", {})

        assert raw.zrange(f"{prefix}active", 0, -1) == ["CA-new"]
        assert raw.zrange(f"{prefix}recent", 0, -1) == ["CA-new"]


def test_two_prefixes_share_one_redis_without_seeing_each_other(
    redis_url: str, redis_options: StoreOptions
):
    prefix = redis_options.key_prefix
    with (
        open_store(redis_url, StoreOptions(key_prefix=f"{prefix}a:")) as first,
        open_store(redis_url, StoreOptions(key_prefix=f"{prefix}b:")) as second,
    ):
        first.create("CA1", {"tenant": "a"})
        second.create("CA1", {"tenant": "b"})
        got = second.get("CA1")
        assert got is not None
        assert got.data == {"tenant": "b"}
        assert [record.data for record in first.recent()] == [{"tenant": "a"}]
        first.purge(0)
        assert second.get("CA1") is not None
        second.purge(0)


def test_a_corrupt_record_names_the_call_not_the_data(redis_url: str, redis_options: StoreOptions):
    with open_store(redis_url, redis_options) as store, store_client(redis_url) as raw:
        raw.hset(
            f"{redis_options.key_prefix}call:CA-bad",
            mapping={"v": 1, "a": 1, "t": time.time(), "d": '["+15551234567"]'},
        )
        with pytest.raises(StoreError, match="CA-bad") as caught:
            store.get("CA-bad")
    assert "5551234567" not in str(caught.value)


# Redis down, hung, restarted


def test_nothing_listening_is_unavailable_at_once():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with open_store(url) as store:
        for call in (
            lambda: store.get("CA1"),
            lambda: store.create("CA1", CALLER),
            lambda: store.update("CA1", CALLER, expected_version=1, active=True),
            lambda: store.active_ids(),
            lambda: store.recent(),
            lambda: store.purge(0),
        ):
            with pytest.raises(StoreUnavailableError) as caught:
                call()
            assert "hunter2" not in str(caught.value)
            assert "5551234567" not in str(caught.value)
            assert caught.value.__cause__ is None


def test_a_hung_redis_is_unavailable_within_the_timeout(redis_server: RedisServer):
    options = StoreOptions(key_prefix="hung:", timeout=0.3)
    with open_store(redis_server.url, options) as store:
        store.create("CA1", {})
        redis_server.pause()
        try:
            with pytest.raises(StoreUnavailableError, match="TimeoutError"):
                store.update("CA1", CALLER, expected_version=1, active=True)
        finally:
            redis_server.resume()
        # The write that timed out was never applied half-way: all or nothing.
        got = store.get("CA1")
        assert got is not None
        assert (got.version, got.data) in ((1, {}), (2, CALLER))


def test_the_store_reconnects_after_a_redis_restart(redis_server: RedisServer):
    with open_store(redis_server.url, StoreOptions(key_prefix="restart:")) as store:
        store.create("CA1", {})
        redis_server.stop()
        with pytest.raises(StoreUnavailableError):
            store.get("CA1")
        redis_server.start()  # same port, empty (no persistence)

        assert store.get("CA1") is None
        store.create("CA2", CALLER)
        assert store.active_ids() == ["CA2"]


def test_concurrent_creates_of_one_id_have_one_winner(redis_url: str, redis_options: StoreOptions):
    with open_store(redis_url, redis_options) as store:
        outcomes: list[str] = []
        barrier = threading.Barrier(8)

        def create(n: int) -> None:
            barrier.wait(timeout=10)
            try:
                store.create("CA1", {"by": n})
                outcomes.append("created")
            except StaleWriteError:
                outcomes.append("stale")

        threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert sorted(outcomes) == ["created"] + ["stale"] * 7


# Options and settings


def test_tls_verification_can_be_turned_off_for_self_signed_certificates():
    relaxed = RedisCallStore(
        "rediss://:pw@redis.example.com:6380/0", StoreOptions(tls_verify=False)
    )
    strict = RedisCallStore("rediss://:pw@redis.example.com:6380/0")
    try:
        relaxed_kwargs = relaxed._redis.connection_pool.connection_kwargs
        strict_kwargs = strict._redis.connection_pool.connection_kwargs
        assert relaxed_kwargs["ssl_cert_reqs"] == "none"
        assert strict_kwargs.get("ssl_cert_reqs", "required") == "required"
    finally:
        relaxed.close()
        strict.close()


def test_the_url_is_logged_without_its_password(caplog: pytest.LogCaptureFixture):
    url = "rediss://default:hunter2@cache.example.com:6380/0"
    with caplog.at_level(logging.INFO, logger="adapter.store.redis"), open_store(url):
        pass
    [line] = [record.getMessage() for record in caplog.records]
    assert "cache.example.com:6380" in line
    assert "hunter2" not in line
    assert "hunter2" not in repr(WebSettings.from_env(SETTINGS_ENV | {"REDIS_URL": url}))


def test_an_invalid_redis_url_hides_its_password():
    with pytest.raises(ValueError, match="STORE_URL") as caught:
        open_store("redis://:hunter2@127.0.0.1:notaport/0")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "sqlite:///adapter.sqlite3"),
        ({"REDIS_URL": "redis://addon:6379"}, "redis://addon:6379"),
        ({"STORE_URL": "sqlite:///x.sqlite3", "REDIS_URL": "redis://addon"}, "sqlite:///x.sqlite3"),
        ({"STORE_URL": " ", "REDIS_URL": "rediss://addon"}, "rediss://addon"),
    ],
)
def test_store_url_falls_back_to_redis_url(env: dict[str, str], expected: str):
    assert read_store_url(EnvReader(env)) == expected


SETTINGS_ENV = {
    "GA_API_ID": "id",
    "GA_API_SECRET": "secret",
    "TWILIO_AUTH_TOKEN": "token",
    "AGENT_DESTINATION": "+15550100",
    "AMI_HOST": "pbx",
    "AMI_USERNAME": "adapter",
    "AMI_SECRET": "secret",
}


def test_both_settings_readers_take_the_store_settings():
    env = {
        **SETTINGS_ENV,
        "REDIS_URL": "rediss://:pw@addon:6380",
        "STORE_KEY_PREFIX": "prod:",
        "STORE_RETENTION_HOURS": "48",
        "STORE_TLS_VERIFY": "false",
    }
    expected = StoreOptions(key_prefix="prod:", retention_hours=48, tls_verify=False)
    web = WebSettings.from_env(env)
    worker = WorkerSettings.from_env(env)
    assert (web.store_url, web.store_options) == ("rediss://:pw@addon:6380", expected)
    assert (worker.store_url, worker.store_options) == ("rediss://:pw@addon:6380", expected)


def store_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)
