"""Real Redis topologies on free loopback ports, for tests that need Sentinel or Cluster.

`SentinelSetup` runs a master, a replica and three sentinels; `ClusterSetup` runs three masters
with a replica each. Both are async context managers, so a fixture is a few lines:

    @pytest.fixture
    async def sentinel_setup() -> AsyncIterator[SentinelSetup]:
        async with SentinelSetup() as setup:
            yield setup

Each process is this machine's `redis-server` on 127.0.0.1, with its config, log and (if any)
data in one temporary directory. Every process is SIGKILLed by pid when the setup stops: on
leaving the `async with` whatever happened inside it, when starting fails half-way, and, as a
last resort, when the interpreter exits. `async with` returns only once the topology is whole:
replicas synced, sentinels agreeing with each other, every cluster node reporting `cluster_state:ok`.
`start_timeout` bounds each stage of starting (processes answering, cluster creation, readiness).

What to expect on two cores: a sentinel setup is ready in about 1.2 s and fails over about 2.2 s
after its master is SIGKILLed (down-after 1 s); an old master started again is made a replica on
the sentinels' next ten-second INFO, about 10 s later. A cluster is ready in 2-3 s (its masters
wait 2 s after starting before they call the cluster ok) and fails over 3.5-4.5 s after a master
is killed (node timeout 2 s, then the replica's election).

Topology state is read with the plain RESP2 replies of the servers (`execute_command` with the
command's words as separate arguments, so no redis-py reply callback reshapes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import RedisError

LOOPBACK = "127.0.0.1"
POLL_SECONDS = 0.02
# Node flags in CLUSTER NODES that mean a node is not (yet, or any more) a working member.
BAD_CLUSTER_FLAGS = frozenset({"fail", "fail?", "handshake", "noaddr"})

Address = tuple[str, int]
Check = Callable[[], Awaitable[str | None]]


class TopologyError(RuntimeError):
    """A topology did not come up, or one of its processes died when it should not have."""


class _PortTaken(TopologyError):
    """A process lost its port to someone else between choosing it and binding it."""


class Failover(NamedTuple):
    """Where the master is now, and how many seconds after the kill a client could use it."""

    address: Address
    seconds: float


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nobody listens on right now.

    All are held at once while choosing, so no two are the same; like any free-port check, another
    process can still take one before Redis binds it, which the setups handle by starting again.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sockets.append(sock)
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def redis_binary(name: str = "redis-server") -> str:
    """The path of a Redis program on PATH; FileNotFoundError if it is not installed."""
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed")
    return path


class RedisProcess:
    """One `redis-server` (data node or sentinel) of a topology: its port, files and pid."""

    def __init__(self, name: str, directory: Path, port: int, *, sentinel: bool = False) -> None:
        self.name = name
        self.directory = directory
        self.port = port
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def __repr__(self) -> str:
        return f"<{self.name} {LOOPBACK}:{self.port} pid={self.pid}>"

    @property
    def address(self) -> Address:
        return (LOOPBACK, self.port)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    @property
    def config_file(self) -> Path:
        return self.directory / ("sentinel.conf" if self.sentinel else "redis.conf")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died(self) -> bool:
        """Started, not killed by us, and gone."""
        return self.proc is not None and self.proc.poll() is not None

    def start(self, binary: str, config: Sequence[str]) -> None:
        if self.running():
            raise TopologyError(f"{self.name} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {self.port}",
            f"bind {LOOPBACK}",
            "daemonize no",
            f'dir "{self.directory}"',
            f'logfile "{self.log_file}"',
            *config,
        ]
        self.config_file.write_text("\n".join(lines) + "\n")
        args = [binary, str(self.config_file)] + (["--sentinel"] if self.sentinel else [])
        with (self.directory / "stdout.log").open("ab") as output:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=self.directory
            )
        self.started_at = time.monotonic()

    def kill(self) -> None:
        """SIGKILL by pid, as a crash would, and reap it. Does nothing if it is not running."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the process holds its connections but answers nothing until `resume()`."""
        if self.proc is None or self.proc.poll() is not None:
            raise TopologyError(f"{self.name} is not running")
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause()`; does nothing if the process is gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def log_tail(self, lines: int = 8) -> str:
        text = []
        for path in (self.directory / "stdout.log", self.log_file):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)


def _kill_all(processes: Iterable[RedisProcess]) -> None:
    for process in list(processes):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            process.kill()


class _Clients:
    """Short-lived clients to the topology's processes, one per port, closed together.

    No retries and short timeouts: a failed call only means "not ready yet" to a poll loop.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[int, str | None], aioredis.Redis] = {}

    def __call__(self, port: int, password: str | None = None) -> aioredis.Redis:
        key = (port, password)
        if key not in self._clients:
            self._clients[key] = aioredis.Redis(
                host=LOOPBACK,
                port=port,
                password=password,
                decode_responses=True,
                protocol=2,
                socket_timeout=1.0,
                socket_connect_timeout=0.5,
                retry=Retry(NoBackoff(), 0),
            )
        return self._clients[key]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)


def _pairs(reply: Sequence[Any]) -> dict[str, str]:
    """A flat RESP2 [field, value, field, value, ...] reply as a dict."""
    it = iter(reply)
    return {str(k): str(v) for k, v in zip(it, it, strict=True)}


def _flags(entry: dict[str, str]) -> set[str]:
    return set(entry.get("flags", "").split(","))


def _info_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


async def _command(client: aioredis.Redis, *args: str | int) -> Any:
    """The server's reply as it came (RESP2, decoded), whatever callback redis-py has for it."""
    execute: Callable[..., Awaitable[Any]] = client.execute_command
    return await execute(*args)


async def _replication(client: aioredis.Redis) -> dict[str, str]:
    info = await client.info("replication")
    return {str(k): str(v) for k, v in info.items()}


class _Topology:
    """What both setups share: the temporary directory, the processes, starting and stopping."""

    kind = "topology"
    password: str | None = None  # of the data nodes

    def __init__(self, *, base_dir: Path | None, start_timeout: float) -> None:
        self.binary = redis_binary()
        self.start_timeout = start_timeout
        self._base_dir = base_dir
        self._directory: Path | None = None
        self._processes: list[RedisProcess] = []
        # Should a test's teardown never run, the processes still go when the interpreter exits.
        self._finalizer = weakref.finalize(self, _kill_all, self._processes)

    @property
    def directory(self) -> Path:
        if self._directory is None:
            raise TopologyError(f"the {self.kind} is not started")
        return self._directory

    def pids(self) -> dict[str, int]:
        """The pid of each running process, by name."""
        return {p.name: p.pid for p in self._processes if p.pid is not None and p.running()}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def start(self) -> None:
        """Start every process and return once the topology is whole; on failure, leave nothing running."""
        try:
            for attempt in range(3):
                self._fresh_directory()
                try:
                    await self._start()
                    return
                except _PortTaken:
                    if attempt == 2:
                        raise
                    _kill_all(self._processes)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGKILL every process by pid and remove the temporary directory. Safe to call twice."""
        _kill_all(self._processes)
        self._processes.clear()
        if self._directory is not None and self._base_dir is None:
            shutil.rmtree(self._directory, ignore_errors=True)
        self._directory = None

    async def wait_replicated(self, timeout: float = 10.0) -> None:
        """Wait until every running replica has applied all its (running) master has written, so
        a write made before a kill survives the failover."""
        async with _Clients() as clients:

            async def caught_up() -> str | None:
                roles = {
                    node.port: await _replication(clients(node.port, self.password))
                    for node in self._data_nodes()
                    if node.running()
                }
                for port, role in roles.items():
                    if role.get("role") != "slave":
                        continue
                    master = roles.get(int(role.get("master_port", 0)))
                    if master is None:
                        continue  # its master is not running: nothing to catch up with
                    if role.get("master_link_status") != "up":
                        return f"{port}: link to its master {role.get('master_link_status')}"
                    applied, written = role.get("slave_repl_offset"), master.get("master_repl_offset")
                    if applied != written:
                        return f"{port} at offset {applied} of {written}"
                return None

            await self._wait_until(caught_up, timeout, "replicas catching up")

    def _data_nodes(self) -> list[RedisProcess]:
        raise NotImplementedError

    async def _start(self) -> None:
        raise NotImplementedError

    def _fresh_directory(self) -> None:
        if self._directory is not None and self._base_dir is None:
            shutil.rmtree(self._directory, ignore_errors=True)
        if self._base_dir is None:
            self._directory = Path(tempfile.mkdtemp(prefix=f"redis-{self.kind}-"))
        else:
            self._directory = self._base_dir
            for process in self._processes:
                shutil.rmtree(process.directory, ignore_errors=True)
        self._processes.clear()

    def _process(self, name: str, port: int, *, sentinel: bool = False) -> RedisProcess:
        directory = self.directory / name
        shutil.rmtree(directory, ignore_errors=True)
        process = RedisProcess(name, directory, port, sentinel=sentinel)
        self._processes.append(process)
        return process

    def _check_alive(self) -> None:
        for process in self._processes:
            if process.died():
                tail = process.log_tail()
                process.kill()
                if "Address already in use" in tail:
                    raise _PortTaken(f"{process.name}: port {process.port} was taken")
                raise TopologyError(f"{process.name} exited unexpectedly; its log ends:\n{tail}")

    async def _wait_until(self, check: Check, timeout: float, what: str) -> float:
        """Poll `check` (None when satisfied, else why not) until it passes; returns the seconds it took.

        Raises TopologyError as soon as a process that should be running has died, and TimeoutError
        with the last reason after `timeout` seconds.
        """
        started = time.monotonic()
        deadline = started + timeout
        while True:
            self._check_alive()
            try:
                reason = await check()
            except (RedisError, OSError) as exc:
                reason = repr(exc)
            if reason is None:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not within {timeout}s: {reason}")
            await asyncio.sleep(POLL_SECONDS)

    async def _wait_answering(self, processes: Sequence[RedisProcess], password: str | None) -> None:
        async with _Clients() as clients:

            async def all_answer() -> str | None:
                for p in processes:
                    try:
                        await clients(p.port, password).ping()
                    except (RedisError, OSError) as exc:
                        return f"{p.name}: {exc!r}"
                return None

            await self._wait_until(all_answer, self.start_timeout, f"{self.kind} processes answering")


# -- Sentinel ---------------------------------------------------------------------------------


class SentinelSetup(_Topology):
    """One master, one replica (`replicaof`) and three sentinels monitoring them with quorum 2.

    Sentinels are started knowing each other and the replica (the `known-sentinel` and
    `known-replica` lines a sentinel writes into its own config), so they agree within a second
    instead of after the two-second hello rounds. `password` protects the data nodes (and is given
    to the sentinels as `auth-pass`), `sentinel_password` the sentinels.
    """

    kind = "sentinel"

    def __init__(
        self,
        master_name: str = "incidents",
        *,
        sentinels: int = 3,
        quorum: int | None = None,
        password: str | None = None,
        sentinel_password: str | None = None,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        persistence: bool = False,
        base_dir: Path | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        super().__init__(base_dir=base_dir, start_timeout=start_timeout)
        self.master_name = master_name
        self.sentinel_count = sentinels
        self.quorum = quorum if quorum is not None else sentinels // 2 + 1
        self.password = password
        self.sentinel_password = sentinel_password
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.persistence = persistence
        self.data: list[RedisProcess] = []
        self.sentinels: list[RedisProcess] = []
        self._master: RedisProcess | None = None
        self._killed: RedisProcess | None = None
        self._killed_at = 0.0
        self._restarted: RedisProcess | None = None

    def _data_nodes(self) -> list[RedisProcess]:
        return self.data

    # addresses

    def sentinel_addresses(self) -> list[Address]:
        return [s.address for s in self.sentinels]

    def data_addresses(self) -> list[Address]:
        return [d.address for d in self.data]

    @property
    def master(self) -> RedisProcess:
        """The data node the setup last saw as master (at start, after a failover, on `master_address`)."""
        if self._master is None:
            raise TopologyError("the sentinel setup is not started")
        return self._master

    @property
    def replica(self) -> RedisProcess:
        """The data node that is not the master (as last seen)."""
        return next(node for node in self.data if node is not self.master)

    async def master_address(self) -> Address:
        """The master's address as the first sentinel that answers names it."""
        async with _Clients() as clients:
            for s in self.sentinels:
                if not s.running():
                    continue
                try:
                    reply = await self._ask_master(clients, s)
                except (RedisError, OSError):
                    continue
                if reply is not None:
                    self._track_master(reply)
                    return reply
        raise TopologyError(f"no sentinel names a master for {self.master_name!r}")

    # failures

    def kill_master(self) -> Address:
        """SIGKILL the master (as last seen, see `master`) by pid; returns its address."""
        node = self.master
        if not node.running():
            raise TopologyError(f"the master {node.name} is not running")
        node.kill()
        self._killed, self._killed_at = node, time.monotonic()
        return node.address

    async def wait_for_failover(self, timeout: float = 30.0) -> Failover:
        """Wait until the sentinels have promoted another node after `kill_master`.

        `seconds` counts from the kill until a sentinel first named the new master and the new
        master said it was one: when a client asking the sentinels can write again. The call
        itself returns only once every running sentinel names it, so the next step starts from
        a settled state.
        """
        killed = self._killed
        if killed is None:
            raise TopologyError("kill_master() first")
        promoted: list[tuple[Address, float]] = []
        async with _Clients() as clients:

            async def switched() -> str | None:
                named: set[Address] = set()
                for s in self.sentinels:
                    if s.running():
                        address = await self._ask_master(clients, s)
                        if address is None:
                            return f"{s.name} names no master"
                        named.add(address)
                fresh = named - {killed.address}
                if not fresh:
                    return "every sentinel still names the killed master"
                new = self._node_at(next(iter(fresh)))
                if not promoted:
                    role = await _replication(clients(new.port, self.password))
                    if role.get("role") != "master":
                        return f"{new.name} is named but still a {role.get('role')}"
                    promoted.append((new.address, time.monotonic() - self._killed_at))
                if named != {new.address}:
                    return f"sentinels disagree: {sorted(named)}"
                return None

            await self._wait_until(switched, timeout, f"failover of {self.master_name!r}")
        address, seconds = promoted[0]
        self._track_master(address)
        return Failover(address, seconds)

    async def restart_old_master(self, empty: bool = True) -> Address:
        """Start the node `kill_master` killed again, on its port, as a master of its own.

        The sentinels then reconfigure it as a replica of the current master (`wait_for_replica`):
        they do that on the INFO they send it every ten seconds, so allow ~10-12 s. `empty=False`
        keeps what it had on disk, which is its data only with `persistence=True`.
        """
        node = self._killed
        if node is None:
            raise TopologyError("kill_master() first")
        if not empty and not self.persistence:
            raise ValueError("the data nodes keep nothing on disk: use SentinelSetup(persistence=True)")
        if empty:
            for path in node.directory.iterdir():
                if path.name in ("dump.rdb", "appendonlydir") or path.suffix in (".aof", ".rdb"):
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
        node.start(self.binary, self._data_config())
        self._killed, self._restarted = None, node
        await self._wait_answering([node], self.password)
        return node.address

    async def wait_for_replica(self, address: Address | None = None, timeout: float = 30.0) -> float:
        """Wait until the node (by default the one last restarted) replicates the current master
        with its link up, and every running sentinel lists it as a replica that is up; returns the
        seconds since it was started.

        The sentinels' own `master-link-status` for it is not waited for: each sentinel refreshes
        it only on its next ten-second INFO.
        """
        node = self._node_at(address) if address is not None else self._restarted
        if node is None:
            raise TopologyError("restart_old_master() first, or name the node")
        master = self.master
        async with _Clients() as clients:

            async def replicating() -> str | None:
                role = await _replication(clients(node.port, self.password))
                if role.get("role") != "slave" or role.get("master_port") != str(master.port):
                    return f"{node.name} is a {role.get('role')} (master port {role.get('master_port')})"
                if role.get("master_link_status") != "up":
                    return f"{node.name} has its link to {master.name} {role.get('master_link_status')}"
                for s in self.sentinels:
                    if s.running() and not await self._lists_replica(clients, s, node, link_checked=False):
                        return f"{s.name} does not list {node.name} as a replica that is up"
                return None

            await self._wait_until(replicating, timeout, f"{node.name} replicating {master.name}")
        return time.monotonic() - node.started_at

    # start

    async def _start(self) -> None:
        ports = free_ports(2 + self.sentinel_count)
        master = self._process("data-1", ports[0])
        replica = self._process("data-2", ports[1])
        self.data = [master, replica]
        self.sentinels = [
            self._process(f"sentinel-{i + 1}", port, sentinel=True) for i, port in enumerate(ports[2:])
        ]
        self._master, self._killed, self._restarted = master, None, None
        ids = [secrets.token_hex(20) for _ in self.sentinels]
        master.start(self.binary, self._data_config())
        replica.start(self.binary, [*self._data_config(), f"replicaof {LOOPBACK} {master.port}"])
        for i, s in enumerate(self.sentinels):
            s.start(self.binary, self._sentinel_config(i, ids, master, replica))
        async with _Clients() as clients:
            await self._wait_until(
                lambda: self._ready(clients, master, replica), self.start_timeout, "sentinel setup ready"
            )

    def _data_config(self) -> list[str]:
        config = [
            'save ""',
            "appendonly yes" if self.persistence else "appendonly no",
            "appendfsync always",
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",
        ]
        if self.password is not None:
            config += [f"requirepass {self.password}", f"masterauth {self.password}"]
        return config

    def _sentinel_config(
        self, index: int, ids: Sequence[str], master: RedisProcess, replica: RedisProcess
    ) -> list[str]:
        name = self.master_name
        config = [
            f"sentinel myid {ids[index]}",
            f"sentinel monitor {name} {LOOPBACK} {master.port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
            f"sentinel known-replica {name} {LOOPBACK} {replica.port}",
        ]
        config += [
            f"sentinel known-sentinel {name} {LOOPBACK} {s.port} {ids[i]}"
            for i, s in enumerate(self.sentinels)
            if i != index
        ]
        if self.password is not None:
            config.append(f"sentinel auth-pass {name} {self.password}")
        if self.sentinel_password is not None:
            config += [
                f"requirepass {self.sentinel_password}",
                f"sentinel sentinel-pass {self.sentinel_password}",
            ]
        return config

    async def _ready(self, clients: _Clients, master: RedisProcess, replica: RedisProcess) -> str | None:
        role = await _replication(clients(replica.port, self.password))
        if role.get("master_link_status") != "up":
            return f"replica link {role.get('master_link_status')}"
        peers = self.sentinel_count - 1
        for s in self.sentinels:
            client = clients(s.port, self.sentinel_password)
            state = _pairs(await _command(client, "SENTINEL", "MASTER", self.master_name))
            if _flags(state) != {"master"} or state.get("port") != str(master.port):
                return f"{s.name} sees {state.get('port')} as {state.get('flags')}"
            if int(state.get("num-other-sentinels", 0)) < peers:
                return f"{s.name} knows {state.get('num-other-sentinels')} other sentinels"
            if not await self._lists_replica(clients, s, replica):
                return f"{s.name} does not list the replica as healthy yet"
            known = await _command(client, "SENTINEL", "SENTINELS", self.master_name)
            healthy = [e for e in map(_pairs, known) if _flags(e) == {"sentinel"}]
            if len(healthy) < peers:
                return f"{s.name} is connected to {len(healthy)} of {peers} other sentinels"
        return None

    async def _lists_replica(
        self, clients: _Clients, sentinel: RedisProcess, node: RedisProcess, *, link_checked: bool = True
    ) -> bool:
        """Whether the sentinel lists the node as a replica that is up (what redis-py's `slave_for`
        asks); with `link_checked`, also one whose link to the master was up at its last INFO."""
        client = clients(sentinel.port, self.sentinel_password)
        replicas = await _command(client, "SENTINEL", "REPLICAS", self.master_name)
        return any(
            e.get("port") == str(node.port)
            and _flags(e) == {"slave"}
            and (e.get("master-link-status") == "ok" or not link_checked)
            for e in map(_pairs, replicas)
        )

    async def _ask_master(self, clients: _Clients, sentinel: RedisProcess) -> Address | None:
        client = clients(sentinel.port, self.sentinel_password)
        reply = await _command(client, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        if not reply:
            return None
        return (str(reply[0]), int(reply[1]))

    def _node_at(self, address: Address) -> RedisProcess:
        for node in self.data:
            if node.port == address[1]:
                return node
        raise TopologyError(f"{address} is not a data node of this setup")

    def _track_master(self, address: Address) -> None:
        self._master = self._node_at(address)


# -- Cluster ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterNodeView:
    """One line of CLUSTER NODES."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...] = field(default=())

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    def serves(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)

    def shape(self) -> tuple[str, int, bool, str | None, tuple[tuple[int, int], ...]]:
        """What every node should agree on (the `myself` flag and link state aside)."""
        return (self.id, self.port, self.is_master, self.master_id, self.slots)


def parse_cluster_nodes(text: str) -> dict[str, ClusterNodeView]:
    views = {}
    for line in text.strip().splitlines():
        parts = line.split()
        slots = []
        for item in parts[8:]:
            if item.startswith("["):
                continue  # a slot being migrated or imported
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        address = parts[1].split("@")[0]
        views[parts[0]] = ClusterNodeView(
            id=parts[0],
            port=int(address.rsplit(":", 1)[1]),
            flags=frozenset(parts[2].split(",")),
            master_id=None if parts[3] == "-" else parts[3],
            slots=tuple(sorted(slots)),
        )
    return views


def _as_key(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


class ClusterSetup(_Topology):
    """A Redis Cluster: `masters` masters with `replicas` replicas each (default 3 x 1).

    Created with `redis-cli --cluster create` when redis-cli is installed (or when
    `use_redis_cli=True`), otherwise by hand with CLUSTER ADDSLOTSRANGE / MEET / REPLICATE.
    `password` sets `requirepass` and `masterauth` on every node.
    """

    kind = "cluster"

    def __init__(
        self,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 2000,
        password: str | None = None,
        use_redis_cli: bool | None = None,
        base_dir: Path | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        super().__init__(base_dir=base_dir, start_timeout=start_timeout)
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least three masters")
        self.master_count = masters
        self.replicas_per_master = replicas
        self.node_timeout_ms = node_timeout_ms
        self.password = password
        cli = shutil.which("redis-cli")
        if use_redis_cli and cli is None:
            raise FileNotFoundError("redis-cli is not installed")
        self.redis_cli = cli if use_redis_cli is not False else None
        self.nodes: list[RedisProcess] = []
        self._bus_ports: dict[str, int] = {}
        self._view: dict[str, ClusterNodeView] = {}
        self._killed: dict[int, tuple[RedisProcess, float]] = {}

    def _data_nodes(self) -> list[RedisProcess]:
        return self.nodes

    # addresses

    def addresses(self) -> list[Address]:
        """Every running node."""
        return [n.address for n in self.nodes if n.running()]

    def startup_nodes(self) -> list[ClusterNode]:
        """Fresh `redis.asyncio.cluster.ClusterNode`s for every running node."""
        return [ClusterNode(host, port) for host, port in self.addresses()]

    def view(self) -> dict[str, ClusterNodeView]:
        """The cluster as last read (at start and after each failover), by node id."""
        return dict(self._view)

    def master_of(self, key: str | bytes) -> Address:
        """The master serving `key`'s slot, as last read."""
        return self._owner(key_slot(_as_key(key))).address

    # failures

    def kill_master_of(self, key: str | bytes) -> Address:
        """SIGKILL, by pid, the master serving `key`'s slot (as last read); returns its address."""
        slot = key_slot(_as_key(key))
        node = self._owner(slot)
        if not node.running():
            raise TopologyError(f"{node.name} is not running")
        node.kill()
        self._killed[slot] = (node, time.monotonic())
        return node.address

    async def wait_for_failover(self, key: str | bytes, timeout: float = 30.0) -> float:
        """Seconds from `kill_master_of(key)` until a promoted replica serves the key's slot:
        every running node names the same live master for the slot and says `cluster_state:ok`,
        and that master says it is one."""
        slot = key_slot(_as_key(key))
        if slot not in self._killed:
            raise TopologyError("kill_master_of(key) first")
        killed, killed_at = self._killed[slot]
        async with _Clients() as clients:

            async def served() -> str | None:
                owners = set()
                for node in self.nodes:
                    if not node.running():
                        continue
                    client = clients(node.port, self.password)
                    state = _info_fields(await _command(client, "CLUSTER", "INFO"))
                    if state.get("cluster_state") != "ok":
                        return f"{node.name}: cluster_state {state.get('cluster_state')}"
                    views = parse_cluster_nodes(await _command(client, "CLUSTER", "NODES"))
                    owner = next((v for v in views.values() if v.is_master and v.serves(slot)), None)
                    if owner is None or owner.port == killed.port or owner.flags & BAD_CLUSTER_FLAGS:
                        return f"{node.name} sees slot {slot} on {owner}"
                    owners.add(owner.port)
                if len(owners) != 1:
                    return f"nodes disagree on who serves slot {slot}: {sorted(owners)}"
                new = self._node_on(owners.pop())
                role = await _replication(clients(new.port, self.password))
                if role.get("role") != "master":
                    return f"{new.name} serves slot {slot} but is a {role.get('role')}"
                return None

            await self._wait_until(served, timeout, f"failover of slot {slot}")
            seconds = time.monotonic() - killed_at
            await self._read_view(clients)
        del self._killed[slot]
        return seconds

    async def wait_until_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node says `cluster_state:ok`."""
        async with _Clients() as clients:

            async def ok() -> str | None:
                for node in self.nodes:
                    if node.running():
                        text = await _command(clients(node.port, self.password), "CLUSTER", "INFO")
                        state = _info_fields(text).get("cluster_state")
                        if state != "ok":
                            return f"{node.name}: cluster_state {state}"
                return None

            await self._wait_until(ok, timeout, "cluster_state ok")
            await self._read_view(clients)

    # start

    async def _start(self) -> None:
        count = self.master_count * (1 + self.replicas_per_master)
        ports = free_ports(2 * count)
        self.nodes = []
        self._bus_ports = {}
        self._killed = {}
        for i in range(count):
            node = self._process(f"node-{i + 1}", ports[2 * i])
            self._bus_ports[node.name] = ports[2 * i + 1]
            self.nodes.append(node)
        for node in self.nodes:
            node.start(self.binary, self._node_config(node))
        await self._wait_answering(self.nodes, self.password)
        if self.redis_cli is not None:
            await self._create_with_redis_cli(self.redis_cli)
        else:
            await self._create_by_hand()
        async with _Clients() as clients:
            await self._wait_until(lambda: self._whole(clients), self.start_timeout, "cluster ready")
            await self._read_view(clients)

    def _node_config(self, node: RedisProcess) -> list[str]:
        config = [
            "cluster-enabled yes",
            f"cluster-port {self._bus_ports[node.name]}",
            f'cluster-config-file "{node.directory / "nodes.conf"}"',
            f"cluster-node-timeout {self.node_timeout_ms}",
            # A replica may always stand in for its master, however long since it last heard from it.
            "cluster-replica-validity-factor 0",
            'save ""',
            "appendonly no",
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",
        ]
        if self.password is not None:
            config += [f"requirepass {self.password}", f"masterauth {self.password}"]
        return config

    async def _create_with_redis_cli(self, cli: str) -> None:
        env = dict(os.environ)
        if self.password is not None:
            env["REDISCLI_AUTH"] = self.password
        addresses = [f"{LOOPBACK}:{node.port}" for node in self.nodes]
        proc = await asyncio.create_subprocess_exec(
            cli,
            "--cluster",
            "create",
            *addresses,
            "--cluster-replicas",
            str(self.replicas_per_master),
            "--cluster-yes",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), self.start_timeout)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            raise TopologyError(f"redis-cli --cluster create failed:\n{output.decode(errors='replace')}")

    async def _create_by_hand(self) -> None:
        masters = self.nodes[: self.master_count]
        replicas = self.nodes[self.master_count :]
        async with _Clients() as clients:
            ids = {}
            for node in self.nodes:
                ids[node.name] = str(await _command(clients(node.port, self.password), "CLUSTER", "MYID"))
            bounds = [REDIS_CLUSTER_HASH_SLOTS * i // len(masters) for i in range(len(masters) + 1)]
            for i, node in enumerate(masters):
                client = clients(node.port, self.password)
                await _command(client, "CLUSTER", "ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
            for epoch, node in enumerate(self.nodes, start=1):
                await _command(clients(node.port, self.password), "CLUSTER", "SET-CONFIG-EPOCH", epoch)
            # Every node meets every other one, rather than one and then the rest by gossip: faster.
            for i, node in enumerate(self.nodes):
                for other in self.nodes[i + 1 :]:
                    bus_port = self._bus_ports[other.name]
                    await _command(
                        clients(node.port, self.password), "CLUSTER", "MEET", LOOPBACK, other.port, bus_port
                    )

            async def all_met() -> str | None:
                for node in self.nodes:
                    text = await _command(clients(node.port, self.password), "CLUSTER", "NODES")
                    views = parse_cluster_nodes(text)
                    if len(views) < len(self.nodes) or any(
                        v.flags & BAD_CLUSTER_FLAGS for v in views.values()
                    ):
                        return f"{node.name} knows {len(views)} nodes"
                return None

            await self._wait_until(all_met, self.start_timeout, "cluster nodes meeting")
            for i, node in enumerate(replicas):
                master = masters[i % len(masters)]
                await _command(clients(node.port, self.password), "CLUSTER", "REPLICATE", ids[master.name])

    async def _whole(self, clients: _Clients) -> str | None:
        shapes = None
        for node in self.nodes:
            client = clients(node.port, self.password)
            state = _info_fields(await _command(client, "CLUSTER", "INFO"))
            if state.get("cluster_state") != "ok":
                return f"{node.name}: cluster_state {state.get('cluster_state')}"
            if state.get("cluster_slots_ok") != str(REDIS_CLUSTER_HASH_SLOTS):
                return f"{node.name}: {state.get('cluster_slots_ok')} slots ok"
            views = parse_cluster_nodes(await _command(client, "CLUSTER", "NODES"))
            if len(views) != len(self.nodes):
                return f"{node.name} knows {len(views)} nodes"
            if any(v.flags & BAD_CLUSTER_FLAGS for v in views.values()):
                return f"{node.name} flags {[sorted(v.flags) for v in views.values()]}"
            node_shapes = sorted(v.shape() for v in views.values())
            if shapes is not None and node_shapes != shapes:
                return f"{node.name} sees another cluster shape than node-1"
            shapes = node_shapes
            masters = [v for v in views.values() if v.is_master]
            if len(masters) != self.master_count or not all(m.slots for m in masters):
                return f"{node.name} sees {len(masters)} masters"
            for m in masters:
                followers = [v for v in views.values() if v.master_id == m.id]
                if len(followers) != self.replicas_per_master:
                    return f"{node.name} sees {len(followers)} replicas of {m.port}"
            me = next(v for v in views.values() if "myself" in v.flags)
            if not me.is_master:
                role = await _replication(client)
                if role.get("master_link_status") != "up" or role.get("master_sync_in_progress") != "0":
                    return f"{node.name}: replica link {role.get('master_link_status')}"
        return None

    async def _read_view(self, clients: _Clients) -> None:
        for node in self.nodes:
            if node.running():
                text = await _command(clients(node.port, self.password), "CLUSTER", "NODES")
                self._view = parse_cluster_nodes(text)
                return
        raise TopologyError("no cluster node is running")

    def _owner(self, slot: int) -> RedisProcess:
        for view in self._view.values():
            if view.is_master and view.serves(slot) and not view.flags & BAD_CLUSTER_FLAGS:
                return self._node_on(view.port)
        raise TopologyError(f"no live master serves slot {slot}")

    def replica_of(self, key: str | bytes) -> RedisProcess:
        """A replica of the master serving `key`'s slot, as last read."""
        owner = self._owner(key_slot(_as_key(key)))
        owner_id = next(v.id for v in self._view.values() if v.port == owner.port)
        for view in self._view.values():
            if view.master_id == owner_id and not view.flags & BAD_CLUSTER_FLAGS:
                return self._node_on(view.port)
        raise TopologyError(f"{owner.name} has no live replica")

    def _node_on(self, port: int) -> RedisProcess:
        for node in self.nodes:
            if node.port == port:
                return node
        raise TopologyError(f"port {port} is not a node of this cluster")
