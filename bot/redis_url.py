"""`REDIS_URL`: a single server, a Sentinel-watched master, or a Redis Cluster.

    redis://[[user]:password@]host[:port][/db]        rediss://…  (TLS)     unix:///path/to.sock
    redis+sentinel://[[user]:password@]host:port[,host:port…]/<master-name>[/<db>]   (rediss+sentinel)
    redis+cluster://[[user]:password@]host:port[,host:port…]                          (rediss+cluster)

Parsing is pure and strict: anything else is refused with one line that names REDIS_URL and the
accepted forms, so a typo stops the bot at start instead of surfacing as a traceback later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import unquote

ACCEPTED_FORMS = (
    "redis://host:port/db, rediss://…, unix:///path, "
    "redis+sentinel://host:port[,host:port…]/<master-name>[/<db>], "
    "redis+cluster://host:port[,host:port…]"
)

_PORT = {"redis": 6379, "sentinel": 26379, "cluster": 6379}
_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+))(?::(?P<port>\d+))?$")


class RedisUrlError(ValueError):
    """REDIS_URL is not one of the accepted forms; the message says why, in one line."""


class Topology(StrEnum):
    SINGLE = "single"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


@dataclass(frozen=True)
class RedisTarget:
    topology: Topology
    url: str = ""  # SINGLE: the URL as given, for redis-py's own from_url
    hosts: tuple[tuple[str, int], ...] = ()  # SENTINEL: the sentinels; CLUSTER: any nodes
    master: str = ""  # SENTINEL: the monitored master's name
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    def describe(self) -> str:
        """Where the store is, without the password: for logs and `incident-bot check`."""
        if self.topology is Topology.SINGLE:
            return redacted(self.url)
        nodes = ",".join(f"{h}:{p}" for h, p in self.hosts)
        if self.topology is Topology.SENTINEL:
            return f"Sentinel master '{self.master}' (db {self.db}) via {nodes}"
        return f"Redis Cluster via {nodes}"


def redacted(url: str) -> str:
    """The URL without its credentials: the userinfo (up to the authority's last `@`, since a
    password may hold an `@`) and any password or username in the query."""
    scheme, sep, rest = url.partition("//")
    if sep:
        authority, slash, tail = rest.partition("/")
        if "@" in authority:
            authority = "***@" + authority.rpartition("@")[2]
        rest = authority + slash + tail
    shown = scheme + sep + rest
    return re.sub(r"(?i)([?&](?:password|username|user|pass)=)[^&#]*", r"\1***", shown)


def _refuse(url: str, why: str) -> RedisUrlError:
    return RedisUrlError(f"REDIS_URL '{redacted(url)}' {why}; use one of: {ACCEPTED_FORMS}")


def _hosts(url: str, netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for part in netloc.split(","):
        match = _HOST_PORT.match(part.strip())
        if not match:
            raise _refuse(url, f"has a bad host '{part}'")
        port = int(match["port"] or default_port)
        if not 0 < port < 65536:
            raise _refuse(url, f"has a bad port {port}")
        hosts.append((match["ipv6"] or match["host"], port))
    return tuple(hosts)


def _credentials(userinfo: str | None) -> tuple[str | None, str | None]:
    if userinfo is None:
        return None, None
    user, _, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if password else None)


def _db(url: str, raw: str) -> int:
    if not raw.isdigit():
        raise _refuse(url, f"has a bad database number '{raw}'")
    return int(raw)


def parse_redis_url(url: str) -> RedisTarget:
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise _refuse(url, "has no scheme")
    scheme = scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        if scheme != "unix" and not rest.split("/", 1)[0].rpartition("@")[2]:
            raise _refuse(url, "names no host")
        if scheme != "unix":
            netloc, _, path = rest.partition("/")
            _hosts(url, netloc.rpartition("@")[2], _PORT["redis"])
            if path.split("?", 1)[0]:
                _db(url, path.split("?", 1)[0])
        return RedisTarget(Topology.SINGLE, url=url, tls=scheme == "rediss")
    base, plus, kind = scheme.partition("+")
    if not plus or base not in ("redis", "rediss") or kind not in ("sentinel", "cluster"):
        raise _refuse(url, f"has an unknown scheme '{scheme}'")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostpart = netloc.rpartition("@")
    username, password = _credentials(userinfo if at else None)
    if not hostpart:
        raise _refuse(url, "names no host")
    hosts = _hosts(url, hostpart, _PORT[kind])
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    tls = base == "rediss"
    if kind == "cluster":
        if segments:
            raise _refuse(url, "gives a database or path, but a Redis Cluster has only database 0")
        return RedisTarget(Topology.CLUSTER, hosts=hosts, username=username, password=password, tls=tls)
    if not segments:
        raise _refuse(url, "names no master (redis+sentinel://host:port/<master-name>)")
    if len(segments) > 2:
        raise _refuse(url, "has more than a master name and a database in its path")
    db = _db(url, segments[1]) if len(segments) == 2 else 0
    return RedisTarget(
        Topology.SENTINEL,
        hosts=hosts,
        master=unquote(segments[0]),
        db=db,
        username=username,
        password=password,
        tls=tls,
    )
