"""A loopback HTTP fault proxy (toxiproxy-style) between concord and a sandbox server.

`FaultProxy(upstream_url)` listens on a free loopback port and relays HTTP/1.1 requests, one by
one per client connection, to the upstream server. `Toxic`s added to it change what happens to
matching requests: "latency" (wait, then relay), "reset" (TCP reset instead of an answer, before
or — with `after_upstream` — after the upstream handled the request), "status" (answer 500, 429
with Retry-After, ... without relaying), "truncate" (relay, then send the headers and half the
body and reset) and "drip" (relay, then send the answer in small chunks with pauses). The proxy
speaks just enough HTTP for the sandbox servers (Content-Length bodies, no chunked encoding),
never logs, and records how often each toxic fired, so tests can assert the fault really hit.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from sandbox.server import BackgroundServer

ToxicKind = Literal["latency", "reset", "status", "truncate", "drip"]
MAX_HEAD = 64 * 1024


@dataclass
class Toxic:
    """One kind of fault for requests matching `path` (prefix) and `method`.

    It fires on every `every`-th matching request, at most `times` times (None: without end).
    `delay` is the latency, or the pause between drip chunks of `chunk` bytes; `status` and
    `retry_after` shape a "status" answer; `after_upstream` makes a "reset" happen only after the
    upstream handled the request (the change is made, the answer is lost).
    """

    kind: ToxicKind
    path: str | None = None
    method: str | None = None
    times: int | None = 1
    every: int = 1
    status: int = 500
    retry_after: int | None = None
    delay: float = 0.0
    chunk: int = 512
    after_upstream: bool = False
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or path.startswith(self.path)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


class _Closed(Exception):
    """The peer closed the connection."""


def _read_head(sock: socket.socket, buffer: bytearray) -> bytes:
    """Read up to and including the blank line ending an HTTP head; leftover stays in buffer."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[: end + 4])
            del buffer[: end + 4]
            return head
        if len(buffer) > MAX_HEAD:
            raise _Closed("head too large")
        data = sock.recv(65536)
        if not data:
            raise _Closed("closed")
        buffer.extend(data)


def _read_body(sock: socket.socket, buffer: bytearray, length: int) -> bytes:
    while len(buffer) < length:
        data = sock.recv(max(65536, length - len(buffer)))
        if not data:
            raise _Closed("closed mid-body")
        buffer.extend(data)
    body = bytes(buffer[:length])
    del buffer[:length]
    return body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or 0)
    return 0


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _status_answer(status: int, retry_after: int | None) -> bytes:
    body = b'{"error": "injected by fault proxy"}'
    head = [
        f"HTTP/1.1 {status} Injected",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        client: socket.socket = self.request
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream: socket.socket | None = None
        cbuf, ubuf = bytearray(), bytearray()
        try:
            while True:
                head = _read_head(client, cbuf)
                body = _read_body(client, cbuf, _content_length(head))
                method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
                path = rest.split(" ", 1)[0].split("?", 1)[0]
                toxic = proxy._take(method, path)
                if toxic is not None and toxic.kind == "latency":
                    time.sleep(toxic.delay)
                elif toxic is not None and toxic.kind == "status":
                    client.sendall(_status_answer(toxic.status, toxic.retry_after))
                    continue
                elif toxic is not None and toxic.kind == "reset" and not toxic.after_upstream:
                    _reset(client)
                    return
                if upstream is None:
                    upstream = socket.create_connection(proxy.upstream, timeout=120)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                upstream.sendall(head + body)
                rhead = _read_head(upstream, ubuf)
                rbody = _read_body(upstream, ubuf, _content_length(rhead))
                if toxic is not None and toxic.kind == "reset":
                    _reset(client)
                    return
                if toxic is not None and toxic.kind == "truncate":
                    client.sendall(rhead + rbody[: len(rbody) // 2])
                    _reset(client)
                    return
                if toxic is not None and toxic.kind == "drip":
                    client.sendall(rhead)
                    for start in range(0, len(rbody), toxic.chunk):
                        time.sleep(toxic.delay)
                        client.sendall(rbody[start : start + toxic.chunk])
                    continue
                client.sendall(rhead + rbody)
        except (_Closed, OSError, ValueError):
            return
        finally:
            if upstream is not None:
                upstream.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)


class FaultProxy(BackgroundServer):
    """Relays to `upstream_url` on a free loopback port; see the module docstring."""

    def __init__(self, upstream_url: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        parts = urlsplit(upstream_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream needs host and port: {upstream_url!r}")
        self.upstream = (parts.hostname, parts.port)
        self.toxics: list[Toxic] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._start_serving(_Server((host, port), self), host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add(self, toxic: Toxic) -> Toxic:
        with self._lock:
            self.toxics.append(toxic)
        return toxic

    def clear(self) -> None:
        with self._lock:
            self.toxics.clear()

    def _take(self, method: str, path: str) -> Toxic | None:
        with self._lock:
            self.requests += 1
            for toxic in self.toxics:
                if toxic.exhausted or not toxic.matches(method, path):
                    continue
                toxic.seen += 1
                if toxic.seen % toxic.every == 0:
                    toxic.fired += 1
                    return toxic
            return None
