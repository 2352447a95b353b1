"""The sample workload survives a lost database connection: it reconnects and carries on.

The database is reached through a TCP proxy that the test cuts (every connection closed, new
ones refused for a while), as a restart does to clients, without restarting the shared
PostgreSQL under the other tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from headwater.cli.workload import run_workload
from headwater.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the database until `cut`, then refuses for `down_s`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open: list[socket.socket] = []
        self.refuse_until = 0.0
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if time.monotonic() < self.refuse_until:
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self, down_s: float) -> None:
        self.refuse_until = time.monotonic() + down_s
        with self.lock:
            dropped, self.open = self.open, []
        for s in dropped:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.closed = True
        self.server.close()
        self.cut(0)


@pytest.fixture
def proxy(stack: Settings) -> Iterator[CuttableProxy]:
    running = CuttableProxy((stack.postgres.host, stack.postgres.port))
    yield running
    running.close()


def test_the_workload_reconnects_after_the_connection_is_lost(
    stack: Settings, proxy: CuttableProxy
) -> None:
    through_proxy = stack.postgres.model_copy(update={"host": "127.0.0.1", "port": proxy.port})
    cutter = threading.Timer(1.5, proxy.cut, args=(2.0,))
    cutter.start()
    try:
        report = run_workload(through_proxy, rate=100, total=400, show=False)
    finally:
        cutter.cancel()
    assert report.reconnects == 1
    assert report.total == 400  # every operation counted was committed; lost ones were replaced
    assert report.skipped >= 1  # the one in flight when the connection went
