"""REDIS_URL: the accepted forms, and a one-line refusal for anything else."""

from __future__ import annotations

import pytest

from bot.redis_url import RedisTarget, RedisUrlError, Topology, parse_redis_url, redacted


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://localhost",
        "rediss://:secret@redis.example.com:6380/2",
        "redis://user:pw@10.0.0.1:6379/15?socket_timeout=1",
        "unix:///var/run/redis.sock",
    ],
)
def test_single_servers_are_left_to_redis_py(url: str) -> None:
    target = parse_redis_url(url)
    assert target.topology is Topology.SINGLE and target.url == url
    assert target.tls is url.startswith("rediss://")


def test_a_sentinel_url() -> None:
    target = parse_redis_url("redis+sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/incidents/3")
    assert target == RedisTarget(
        Topology.SENTINEL,
        hosts=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)),
        master="incidents",
        db=3,
        username="app",
        password="s@cret",
    )
    assert "s@cret" not in repr(target) and "s@cret" not in target.describe()


def test_a_sentinel_url_with_tls_and_the_default_database() -> None:
    target = parse_redis_url("rediss+sentinel://:pw@sentinel-1:26379/mymaster")
    assert (target.tls, target.db, target.master, target.password, target.username) == (
        True,
        0,
        "mymaster",
        "pw",
        None,
    )


def test_a_cluster_url() -> None:
    target = parse_redis_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7001")
    assert target.topology is Topology.CLUSTER
    assert target.hosts == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert parse_redis_url("rediss+cluster://u:p@node:7000/").tls


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("localhost:6379", "has no scheme"),
        ("http://localhost:6379", "unknown scheme 'http'"),
        ("redis+proxy://h:1", "unknown scheme 'redis+proxy'"),
        ("redis+sentinel://h:26379", "names no master"),
        ("redis+sentinel://h:26379/m/x", "bad database number 'x'"),
        ("redis+sentinel://h:26379/m/1/2", "more than a master name"),
        ("redis+cluster://h:7000/1", "only database 0"),
        ("redis+cluster://", "names no host"),
        ("redis+cluster://h:99999", "bad port 99999"),
        ("redis+cluster://h:7000,,h2:7001", "bad host ''"),
        ("redis://localhost:6379/zero", "bad database number 'zero'"),
        ("redis://", "names no host"),
    ],
)
def test_anything_else_is_refused_in_one_line_naming_the_accepted_forms(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError) as refused:
        parse_redis_url(url)
    message = str(refused.value)
    assert says in message and "REDIS_URL" in message and "redis+sentinel://" in message
    assert "\n" not in message


def test_a_refusal_never_shows_the_password() -> None:
    with pytest.raises(RedisUrlError) as refused:
        parse_redis_url("redis+cluster://user:hunter2@h:7000/5")
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@h:6379/0", "redis://***@h:6379/0"),
        ("redis://user:se@cret@h:6379/0", "redis://***@h:6379/0"),  # an @ in the password
        ("redis://h:6379/0?password=secret&db=1", "redis://h:6379/0?password=***&db=1"),
        ("rediss://h:6379/0?username=u&password=p", "rediss://h:6379/0?username=***&password=***"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_a_url_is_shown_without_its_credentials(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert parse_redis_url(url).describe() == shown
