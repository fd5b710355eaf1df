"""A loopback TCP proxy in front of Redis that counts round trips and reads the commands sent.

A round trip is everything a client sends before Redis answers: one command, a whole pipeline,
or a MULTI ... EXEC block written at once. Per connection the proxy opens a new round trip when
the client sends after Redis last answered (or for the first time), and files every command it
parses from the client's bytes under the round trip open then. Requests only (RESP arrays of
bulk strings, which is all redis-py sends) are parsed; replies are passed through unread, except
while a cut waits for them.

Cuts make the connection fail where a store must survive it:

- `cut_before(command)`: when a client's write holds that command, the proxy closes the client's
  connection (and its own to Redis) without forwarding the write: Redis never runs it.
- `cut_after(command)`: the proxy forwards the write, waits until Redis has answered every
  command of that round trip, drops the answers and closes the client's connection: Redis ran
  it, the client only sees the connection go ("the reply was lost after the write").

A pipeline or a MULTI ... EXEC block sent in one write is cut as a whole: the round trip that
holds the command. The replies are counted assuming a client that waits for its answers before
sending again, as redis-py does on a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

ARGS_KEPT = 3  # the command name plus this many arguments are kept (enough to tell scripts apart)

CutWhen = Literal["before", "after"]
Command = tuple[str, ...]  # the command name (upper case) and its arguments


@dataclass
class RoundTrip:
    connection: int
    at: float  # time.perf_counter() when the client started sending
    commands: list[tuple[str, ...]] = field(default_factory=list)
    cut: CutWhen | None = None  # set when a cut ended the connection at this round trip

    @property
    def names(self) -> list[str]:
        return [c[0] for c in self.commands]


@dataclass
class Cut:
    """One armed cut: the next `remaining` round trips holding `command` (and passing `match`)."""

    command: str
    when: CutWhen
    remaining: int
    match: Callable[[Command], bool] | None = None
    fired: int = 0

    def wants(self, command: Command) -> bool:
        return (
            self.remaining > 0 and command[0] == self.command and (self.match is None or self.match(command))
        )


class RespRequestParser:
    """Incremental parser of RESP request arrays (`*N\\r\\n` then N `$len\\r\\n<bytes>\\r\\n`)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, ...]]:
        self._buffer += data
        commands = []
        while self._buffer:
            parsed = self._parse_one()
            if parsed is None:
                break
            command, consumed = parsed
            del self._buffer[:consumed]
            commands.append(command)
        return commands

    def _parse_one(self) -> tuple[tuple[str, ...], int] | None:
        buf = self._buffer
        if buf[:1] != b"*":
            raise ValueError(f"not a RESP request array: {bytes(buf[:20])!r}")
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        count = int(buf[1:end])
        position = end + 2
        parts: list[str] = []
        for _ in range(count):
            end = buf.find(b"\r\n", position)
            if end < 0:
                return None
            if buf[position : position + 1] != b"$":
                raise ValueError("RESP request arguments must be bulk strings")
            length = int(buf[position + 1 : end])
            start = end + 2
            if len(buf) < start + length + 2:
                return None
            parts.append(bytes(buf[start : start + length]).decode("utf-8", errors="replace"))
            position = start + length + 2
        if parts:
            parts[0] = parts[0].upper()
        return tuple(parts), position


class RespReplyCounter:
    """Counts complete top-level RESP2/RESP3 replies in a stream that arrives in pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> int:
        self._buffer += data
        count = 0
        position = 0
        while position < len(self._buffer):
            end = _reply_end(self._buffer, position)
            if end is None:
                break
            position = end
            count += 1
        del self._buffer[:position]
        return count


_LINE_TYPES = frozenset(b"+-:_#,(")
_BULK_TYPES = frozenset(b"$!=")
_AGGREGATE_TYPES = frozenset(b"*~>%|")


def _reply_end(buf: bytearray, start: int) -> int | None:
    """Where the reply starting at `start` ends, or None if it has not fully arrived."""
    line_end = buf.find(b"\r\n", start)
    if line_end < 0:
        return None
    kind = buf[start]
    if kind in _LINE_TYPES:
        return line_end + 2
    length = int(buf[start + 1 : line_end])
    if kind in _BULK_TYPES:
        if length < 0:
            return line_end + 2
        end = line_end + 2 + length + 2
        return end if len(buf) >= end else None
    if kind not in _AGGREGATE_TYPES:
        raise ValueError(f"not a RESP reply: {bytes(buf[start : start + 20])!r}")
    items = length * 2 if kind in b"%|" else length
    position = line_end + 2
    for _ in range(max(items, 0)):
        item_end = _reply_end(buf, position)
        if item_end is None:
            return None
        position = item_end
    if kind == ord("|"):
        return _reply_end(buf, position)  # an attribute map comes before the reply it describes
    return position


class RedisCountingProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.round_trips: list[RoundTrip] = []
        self.cuts: list[Cut] = []
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Closing the sockets ends each session by itself; cancelling a session task instead
            # would leave sockets to the garbage collector.
            for writer in list(self._writers):
                writer.close()
            _, stuck = await asyncio.wait(self._tasks, timeout=1.0) if self._tasks else (set(), set())
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def since(self, at: float) -> list[RoundTrip]:
        return [rt for rt in self.round_trips if rt.at >= at]

    def last_activity(self) -> float:
        return self.round_trips[-1].at if self.round_trips else 0.0

    def cut_before(self, command: str, times: int = 1, match: Callable[[Command], bool] | None = None) -> Cut:
        """Close the client's connection at the next `times` writes holding `command`, unsent.

        `match` gets each parsed command, name first: `("SET", key, value, ...)`.
        """
        return self._arm(command, "before", times, match)

    def cut_after(self, command: str, times: int = 1, match: Callable[[Command], bool] | None = None) -> Cut:
        """Let Redis run the next `times` writes holding `command`, then lose the reply."""
        return self._arm(command, "after", times, match)

    def clear_cuts(self) -> None:
        self.cuts.clear()

    def _arm(self, command: str, when: CutWhen, times: int, match: Callable[[Command], bool] | None) -> Cut:
        if times < 1:
            raise ValueError("a cut fires at least once")
        cut = Cut(command=command.upper(), when=when, remaining=times, match=match)
        self.cuts.append(cut)
        return cut

    def _take_cut(self, commands: list[Command]) -> Cut | None:
        # No await in here: on the proxy's event loop, one write consumes a cut whole.
        for command in commands:
            for cut in self.cuts:
                if cut.wants(command):
                    cut.remaining -= 1
                    cut.fired += 1
                    if cut.remaining == 0:
                        self.cuts.remove(cut)
                    return cut
        return None

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_writer)
        try:
            server_reader, server_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            await _close(client_writer)
            self._writers.discard(client_writer)
            self._tasks.discard(task)
            return
        self._writers.add(server_writer)
        connection = next(self._ids)
        parser = RespRequestParser()
        current: list[RoundTrip | None] = [None]
        # While a cut_after waits for Redis: the reply counter and the replies still owed.
        draining: list[RespReplyCounter | None] = [None]
        owed = [0]

        async def upstream() -> None:
            while data := await client_reader.read(65536):
                round_trip = current[0]
                if round_trip is None:
                    round_trip = RoundTrip(connection=connection, at=time.perf_counter())
                    self.round_trips.append(round_trip)
                    current[0] = round_trip
                commands = parser.feed(data)
                round_trip.commands.extend(c[: ARGS_KEPT + 1] for c in commands)
                if draining[0] is not None:
                    owed[0] += len(commands)
                elif (cut := self._take_cut(commands)) is not None:
                    round_trip.cut = cut.when
                    if cut.when == "before":
                        return  # ends the session: both connections close, this write unsent
                    # Nothing earlier is unanswered (a new round trip opens only after Redis
                    # answered), so Redis owes one reply per command of this round trip.
                    owed[0] = len(round_trip.commands)
                    draining[0] = RespReplyCounter()
                server_writer.write(data)
                await server_writer.drain()

        async def downstream() -> None:
            while data := await server_reader.read(65536):
                current[0] = None  # Redis answered: the client's next bytes open a new round trip
                counter = draining[0]
                if counter is not None:
                    owed[0] -= counter.feed(data)
                    if owed[0] <= 0:
                        return  # Redis ran it all; the replies are dropped and the session ends
                    continue
                client_writer.write(data)
                await client_writer.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (server_writer, client_writer):
                await _close(writer)
                self._writers.discard(writer)
            self._tasks.discard(task)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
