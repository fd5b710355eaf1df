"""A loopback TCP proxy in front of Redis that counts round trips and reads the commands sent.

A round trip is everything a client sends before Redis answers: one command, a whole pipeline,
or a MULTI ... EXEC block written at once. Per connection the proxy opens a new round trip when
the client sends after Redis last answered (or for the first time), and files every command it
parses from the client's bytes under the round trip open then. Requests only (RESP arrays of
bulk strings, which is all redis-py sends) are parsed; replies are passed through unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field

ARGS_KEPT = 3  # the command name plus this many arguments are kept (enough to tell scripts apart)


@dataclass
class RoundTrip:
    connection: int
    at: float  # time.perf_counter() when the client started sending
    commands: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [c[0] for c in self.commands]


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
            if len(parts) <= ARGS_KEPT:
                parts.append(bytes(buf[start : start + length]).decode("utf-8", errors="replace"))
            position = start + length + 2
        if parts:
            parts[0] = parts[0].upper()
        return tuple(parts), position


class RedisCountingProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.round_trips: list[RoundTrip] = []
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def since(self, at: float) -> list[RoundTrip]:
        return [rt for rt in self.round_trips if rt.at >= at]

    def last_activity(self) -> float:
        return self.round_trips[-1].at if self.round_trips else 0.0

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = next(self._ids)
        parser = RespRequestParser()
        current: list[RoundTrip | None] = [None]
        try:
            server_reader, server_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return

        async def upstream() -> None:
            while data := await client_reader.read(65536):
                round_trip = current[0]
                if round_trip is None:
                    round_trip = RoundTrip(connection=connection, at=time.perf_counter())
                    self.round_trips.append(round_trip)
                    current[0] = round_trip
                round_trip.commands.extend(parser.feed(data))
                server_writer.write(data)
                await server_writer.drain()

        async def downstream() -> None:
            while data := await server_reader.read(65536):
                current[0] = None  # Redis answered: the client's next bytes open a new round trip
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
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            self._tasks.discard(task)
