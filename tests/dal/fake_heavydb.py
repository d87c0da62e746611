"""Servers on 127.0.0.1 that the real ``heavyai`` client connects to, each misbehaving as a live
HeavyDB (or the network in front of one) can:

- :func:`full_backlog`: a listener that never accepts, its backlog full: a connect gets no answer;
- :func:`silent`: accepts and never answers (the login waits);
- :func:`half_answer`: reads the login and answers half of a thrift reply, then stops;
- :func:`trickle`: answers the login a byte at a time, never finishing;
- :class:`ThriftServer`: a HeavyDB thrift endpoint (the client's own generated ``Heavy``
  service) that logs in, answers DDL, and hangs on any other statement, recording the
  connections it saw closed.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from heavydb.thrift import Heavy, ttypes
from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport


def _listener(backlog: int) -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(backlog)
    return server


@contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: the kernel drops further SYNs, so a connect hangs."""
    server = _listener(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # backlog 0 holds one (or two) connections; the rest wait for a SYN-ACK
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@contextmanager
def _accepting(serve: Any) -> Iterator[int]:
    server = _listener(16)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


@contextmanager
def silent() -> Iterator[int]:
    """Accepts every connection and never sends a byte."""
    with _accepting(lambda conn: None) as port:
        yield port


def _connect_reply_half() -> bytes:
    """The first half of the reply to ``connect`` (strict binary protocol: version, name, seqid, ...)."""
    name = b"connect"
    whole = struct.pack("!iI", -2147418110, len(name)) + name + struct.pack("!i", 0)  # 0x80010002: a reply
    return whole[: len(whole) // 2]


@contextmanager
def half_answer() -> Iterator[int]:
    """Reads the login request, answers half a reply, then stops (the connection stays open)."""

    def serve(conn: socket.socket) -> None:
        with suppress(OSError):
            conn.recv(65536)
            conn.sendall(_connect_reply_half())

    with _accepting(serve) as port:
        yield port


@contextmanager
def trickle() -> Iterator[int]:
    """Answers the login one byte every 0.3 s, for ever (a reply header announcing an endless
    method name): no single read waits long enough to time out."""

    def serve(conn: socket.socket) -> None:
        with suppress(OSError):
            conn.recv(65536)
            conn.sendall(struct.pack("!ii", -2147418110, 16_000_000))  # under thrift's 16,384,000 cap
            while True:
                conn.sendall(b"a")
                threading.Event().wait(0.3)

    with _accepting(serve) as port:
        yield port


class _Handler:
    def __init__(self, server: ThriftServer) -> None:
        self._server = server

    def connect(self, user: str, passwd: str, dbname: str) -> str:
        return "session-1"

    def get_version(self) -> str:
        return "8.0.1"

    def disconnect(self, session: str) -> None:
        self._server.logouts += 1

    def sql_execute(self, session: str, query: str, *args: Any) -> Any:
        self._server.statements.append(query)
        if not query.lstrip().upper().startswith(("CREATE", "DROP")):
            self._server.release.wait(120)  # a statement that never finishes (until the test ends)
        empty = ttypes.TRowSet(row_desc=[], rows=[], columns=[], is_columnar=True)
        return ttypes.TQueryResult(row_set=empty, execution_time_ms=0, total_time_ms=0, nonce="")


class ThriftServer:
    """A HeavyDB thrift endpoint on 127.0.0.1 (binary protocol, buffered transport, as the client)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.logouts = 0
        self.closed = 0  # connections the client closed (the server read EOF)
        self.release = threading.Event()
        self._processor = Heavy.Processor(_Handler(self))
        self._socket = TSocket.TServerSocket(host="127.0.0.1", port=0)
        self._socket.listen()
        self.port = self._socket.handle.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client = self._socket.accept()
            except Exception:  # noqa: BLE001 - closed at the end of the test
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: Any) -> None:
        transport = TTransport.TBufferedTransport(client)
        protocol = TBinaryProtocol.TBinaryProtocol(transport)
        try:
            while True:
                self._processor.process(protocol, protocol)
        except TTransport.TTransportException:
            self.closed += 1
        except Exception:  # noqa: BLE001 - the client cut the connection mid-statement
            pass
        finally:
            transport.close()

    def stop(self) -> None:
        self.release.set()
        self._stop.set()
        self._socket.close()
