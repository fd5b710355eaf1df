"""The load client, in a process of its own so that neither the server under test nor the
Slack stand-in shares its event loop.

It reads one job per line on stdin (JSON: url, warm_url, concurrency and pre-signed requests)
and answers one line of JSON per job: each request's latency, from sending it to having read
the whole response (the ack), and the wall time of the run. With `capture` (a regular
expression), also when each ack was read (wall clock, comparable with the stand-in's message
timestamps) and the first match of the expression in its body (e.g. the incident id it names).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

TIMEOUT_SECONDS = 30.0
SAMPLE_BODIES = 3


async def run_job(job: dict[str, Any]) -> dict[str, Any]:
    url: str = job["url"]
    concurrency: int = job["concurrency"]
    requests = [(base64.b64decode(r["body"]), dict(r["headers"])) for r in job["requests"]]
    latencies = [0.0] * len(requests)
    starts = [0.0] * len(requests)
    ends = [0.0] * len(requests)
    acked_at = [0.0] * len(requests)
    capture = re.compile(job["capture"]) if job.get("capture") else None
    captured: list[str | None] = [None] * len(requests)
    statuses: Counter[int] = Counter()
    samples: list[str] = []
    kinds: Counter[str] = Counter()  # response bodies with digits blanked out, to tell acks apart
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Open every connection before timing anything, so no request pays for a TCP handshake.
        async def warm() -> None:
            async with session.get(job["warm_url"]) as response:
                await response.read()

        await asyncio.gather(*(warm() for _ in range(concurrency)))
        order = iter(range(len(requests)))

        async def worker() -> None:
            for index in order:  # one shared iterator: each request is sent exactly once
                body, headers = requests[index]
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        reply = await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    status, reply = 0, b""
                end = time.perf_counter()
                acked_at[index] = time.time()
                starts[index], ends[index], latencies[index] = start, end, end - start
                if capture is not None and (found := capture.search(reply.decode(errors="replace"))):
                    captured[index] = found[0]
                statuses[status] += 1
                if len(samples) < SAMPLE_BODIES:
                    samples.append(reply[:300].decode(errors="replace"))
                kinds[re.sub(r"\d+", "N", reply[:80].decode(errors="replace"))] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    result: dict[str, Any] = {
        "latencies": latencies,
        "wall": max(ends) - min(starts) if requests else 0.0,
        "statuses": {str(k): v for k, v in statuses.items()},
        "samples": samples,
        "bodies": dict(kinds.most_common(5)),
        "errors": errors[:5],
    }
    if capture is not None:
        result |= {"acked_at": acked_at, "captured": captured}
    return result


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        result = asyncio.run(run_job(json.loads(line)))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
