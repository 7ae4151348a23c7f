"""Cluster settings: how ``cache.addr`` / ``cache.cluster`` pick the client, and the queue rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cache.client import SafeConnection, SafeSSLConnection, create_client
from cache.cluster import SeenCluster, slot_groups, slot_of
from cache.config import CacheSettings
from worker.settings import SettingsError, load_settings

NODES = "10.0.0.1:7000, 10.0.0.2:7001,10.0.0.3:7002"


def test_several_nodes_mean_a_cluster() -> None:
    settings = CacheSettings(addr=NODES)
    assert settings.is_cluster
    assert settings.addr == "10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002"
    assert settings.cluster_nodes() == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("10.0.0.3", 7002)]
    assert settings.safe_url() == "redis://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002 (cluster)"
    assert not CacheSettings(addr="10.0.0.1:7000").is_cluster


def test_one_node_with_cluster_true() -> None:
    settings = CacheSettings(addr="rediss://user:pw@node1:7000", cluster=True)
    assert settings.is_cluster and settings.cluster_nodes() == [("node1", 7000)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"addr": "a:1,b"}, "comma-separated"),
        ({"addr": "a:1,,b:2"}, "comma-separated"),
        ({"addr": "a:1,b:99999"}, "comma-separated"),
        ({"addr": "a:1,b:2", "db": 3}, "only db 0"),
        ({"addr": "unix:///tmp/redis.sock", "cluster": True}, "not a unix socket"),
    ],
)
def test_bad_cluster_settings(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CacheSettings.model_validate(fields)


def test_cluster_cache_needs_a_queue_of_its_own() -> None:
    with pytest.raises(SettingsError, match=r"set queue\.addr to a standalone server"):
        load_settings(cache={"addr": NODES})
    with pytest.raises(SettingsError, match="needs one instance"):
        load_settings(queue={"addr": "q1:6379,q2:6379"})
    settings = load_settings(cache={"addr": NODES}, queue={"addr": "q1:6379"})
    queue = settings.queue_cache_settings()
    assert (queue.addr, queue.is_cluster) == ("q1:6379", False)


def test_cluster_client_has_the_same_connection_semantics() -> None:
    """No I/O here: the client reads the topology on its first command."""
    settings = CacheSettings.model_validate(
        {"addr": NODES, "username": "app", "password": "pw", "max_connections": 10}
    )
    client = create_client(settings)
    assert isinstance(client, SeenCluster)
    kwargs = client.connection_kwargs
    assert kwargs["connection_class"] is SafeConnection
    assert (kwargs["username"], kwargs["password"]) == ("app", "pw")
    assert kwargs["socket_timeout"] == settings.socket_timeout
    assert kwargs["socket_connect_timeout"] == settings.connect_timeout
    assert kwargs["retry"]._retries == settings.retries
    assert (client.in_flight, client.pool_timeout) == (10, settings.pool_timeout)
    assert client.cluster_error_retry_attempts == settings.retries
    assert all(n.connection_class is SafeConnection for n in client.get_nodes())
    tls = create_client(CacheSettings(addr="rediss://n1:7000", cluster=True))
    assert isinstance(tls, SeenCluster)
    assert tls.connection_kwargs["connection_class"] is SafeSSLConnection


def test_slot_groups_follow_hashtags() -> None:
    keys = ["seen:{a}:1", "seen:{b}:1", "seen:{a}:2", "seen:x"]
    assert slot_of("seen:{a}:1") == slot_of("{a}")
    assert slot_groups(keys) == [[0, 2], [1], [3]]
