"""``python -m bench.dashboard_clients``: N live-downloads SSE clients in one process.

The "browsers" of ``bench_dashboard``: raw HTTP/1.0 streams (no chunked framing to undo),
each parsing every frame it gets. Latency of an event = receipt time - the XADD time in its
stream entry id (ms; same host, same clock). Prints ``ready`` once every client has its first
frame (the snapshot), then, when stdin closes, one JSON line: a latency histogram in ms,
events per client and resyncs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

READ_LIMIT = 256 * 1024 * 1024
ENTRY_MS = re.compile(rb'"i":"(\d+)-')


@dataclass
class Tally:
    latency_ms: Counter[int] = field(default_factory=Counter)
    events: list[int] = field(default_factory=list)
    resyncs: int = 0
    errors: list[str] = field(default_factory=list)


async def one_client(
    host: str, port: int, token: str | None, tally: Tally, index: int, ready: asyncio.Event
) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(
        f"GET /events/downloads HTTP/1.0\r\nHost: {host}:{port}\r\n{auth}"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        tally.errors.append(status.decode(errors="replace").strip())
        ready.set()
        return
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass
    kind = ""
    first = True
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"event: "):
                kind = line[7:].strip().decode()
            elif line.startswith(b"data: "):
                now_ms = time.time() * 1000
                if kind == "progress":
                    # only the entry ids are needed: a regex over the line, not a JSON parse,
                    # so the 100 clients in one process measure the dashboard, not themselves
                    stamps = ENTRY_MS.findall(line)
                    tally.events[index] += len(stamps)
                    for ms in stamps:
                        tally.latency_ms[int(now_ms - int(ms))] += 1
                elif kind == "resync":
                    tally.resyncs += 1
                elif kind == "error":
                    tally.errors.append(line[6:200].decode(errors="replace"))
                if first:
                    first = False
                    ready.set()
    finally:
        writer.close()


async def main_async(url: str, clients: int, token: str | None) -> None:
    host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
    tally = Tally(events=[0] * clients)
    readies = [asyncio.Event() for _ in range(clients)]
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(one_client(host, int(port), token, tally, i, readies[i]))
        for i in range(clients)
    ]
    await asyncio.gather(*(r.wait() for r in readies))
    print(json.dumps({"ready": round(time.perf_counter() - started, 3)}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the bench closes our stdin
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(
        json.dumps(
            {
                "latency_ms": {str(k): v for k, v in tally.latency_ms.items()},
                "events": tally.events,
                "resyncs": tally.resyncs,
                "errors": tally.errors[:5],
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_clients")
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--token")
    args = parser.parse_args()
    import uvloop

    uvloop.run(main_async(args.url, args.clients, args.token))


if __name__ == "__main__":
    main()
