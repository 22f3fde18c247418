"""A TCP proxy that puts a network's latency between the sync and a local IMAP server.

Every chunk of bytes is held ``delay`` seconds in each direction (a round trip of
``2 * delay``), in order and pipelined: a chunk never waits for the one before it
to be delivered, only for its own time. A new connection reaches the server one
round trip after it is accepted, as a TCP handshake would take. TLS goes through
untouched: the client still checks the server's certificate.

It runs in a process of its own (asyncio), so that its work never competes with
the measured code for Python's interpreter lock: ``with LatencyProxy(port) as
proxy:`` then connect to ``proxy.port``. Run alone: ``latency_proxy.py UPSTREAM_PORT
DELAY`` prints the port it listens on, then serves until stdin closes.
"""

import asyncio
import subprocess
import sys

HOST = "127.0.0.1"
CHUNK = 65536


async def _forward(reader, writer, delay, ready):
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived (and not
    before ``ready``, a loop time)."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def deliver():
        while (item := await queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(due - loop.time(), 0))
            writer.write(data)
            await writer.drain()
        writer.close()

    delivering = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((max(loop.time(), ready) + delay, data))
    except OSError:
        pass
    queue.put_nowait(None)
    try:
        await delivering
    except OSError:
        pass


async def _serve(upstream_port, delay, client_reader, client_writer):
    loop = asyncio.get_running_loop()
    ready = loop.time() + 2 * delay  # the TCP handshake's round trip
    try:
        server_reader, server_writer = await asyncio.open_connection(HOST, upstream_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        _forward(client_reader, server_writer, delay, ready),
        _forward(server_reader, client_writer, delay, ready),
    )


async def _main(upstream_port, delay):
    server = await asyncio.start_server(
        lambda r, w: _serve(upstream_port, delay, r, w), HOST, 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    # Serve until the parent closes our stdin (or dies).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()


class LatencyProxy:
    """``with LatencyProxy(upstream_port, round_trip=0.05) as proxy:`` — ``proxy.port``."""

    def __init__(self, upstream_port, round_trip=0.05):
        self.upstream_port = upstream_port
        self.round_trip = round_trip
        self.port = None
        self._process = None

    def __enter__(self):
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.upstream_port), str(self.round_trip / 2)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self._process.stdout.readline())
        return self

    def __exit__(self, *exc):
        self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]), float(sys.argv[2])))
