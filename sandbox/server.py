"""Shared machinery of the sandbox servers: `LoopbackServer` runs a stdlib ThreadingHTTPServer in a
daemon thread (loopback, free port by default, context manager, clean shutdown) and turns each HTTP
request into a `Request` for the subclass's `handle()`, which returns a `Response` or raises
`ApiError`; it checks bearer auth, answers in JSON via orjson, logs nothing, records every request
in `requests`, and applies injected `Fault`s (error status, 429 with Retry-After, truncated body,
connection reset, optionally after the request was really handled) so clients' retry paths can be
tested."""

from __future__ import annotations

import hmac
import signal
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Literal, Self, cast
from urllib.parse import parse_qsl, urlsplit

import orjson

MAX_BODY_BYTES = 16 * 1024 * 1024

FaultKind = Literal["status", "truncate", "reset"]


@dataclass
class Fault:
    """One injected failure, applied to the next `times` requests that match `path`/`method`.

    kind "status" answers `status` (with `Retry-After: retry_after` when given) and `body`;
    "truncate" handles the request, sends the real response's headers but only half its body, then
    resets; "reset" closes the connection with a TCP reset and no response. With `handled=True` the
    request is processed first (state changes happen) and only the answer is lost or replaced.
    """

    status: int = 500
    kind: FaultKind = "status"
    times: int = 1
    retry_after: int | None = None
    path: str | None = None
    method: str | None = None
    handled: bool = False
    body: Any = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or path.startswith(self.path)


@dataclass(frozen=True)
class Request:
    """A parsed HTTP request: path without query, first value of each query parameter, headers
    with lower-case names, raw body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Body parsed as JSON; raises `ApiError(400)` when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None


@dataclass
class Response:
    """A JSON response: `body` is serialised with orjson (None means an empty body)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """Raised by handlers to answer with an error status; the server renders the body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server_version = "concord-sandbox/1"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.add(self.connection)

    def finish(self) -> None:
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sandbox never logs requests (they may carry tokens)."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = cast(_Server, self.server).owner
        split = urlsplit(self.path)
        owner._record(self.command, self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(owner.error_response(ApiError(400, "invalid Content-Length")))
            self.close_connection = True
            return
        if length > MAX_BODY_BYTES:
            self._send(owner.error_response(ApiError(413, "request body too large")))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length > 0 else b""
        query: dict[str, str] = {}
        for key, value in parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(key, value)
        request = Request(
            method=self.command,
            path=split.path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        fault = owner._take_fault(self.command, split.path)
        if fault is not None and not fault.handled and fault.kind != "truncate":
            self._apply_fault(owner, fault, Response())
            return
        response = owner._dispatch(request)
        if fault is not None:
            self._apply_fault(owner, fault, response)
            return
        self._send(response)

    def _apply_fault(self, owner: LoopbackServer, fault: Fault, response: Response) -> None:
        if fault.kind == "reset":
            self._reset()
            return
        if fault.kind == "truncate":
            payload = _encode(response.body)
            self._send_head(response, len(payload))
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._reset()
            return
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.body is not None:
            self._send(Response(fault.status, fault.body, headers))
        else:
            error = owner.error_response(ApiError(fault.status, "injected fault"))
            error.headers.update(headers)
            self._send(error)

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def _send_head(self, response: Response, length: int) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _send(self, response: Response) -> None:
        payload = _encode(response.body)
        self._send_head(response, len(payload))
        if self.command != "HEAD":
            self.wfile.write(payload)


def _encode(body: Any) -> bytes:
    return b"" if body is None else orjson.dumps(body)


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server for the sandboxes: daemon threads, and a client that hangs up
    (the retry tests do it on purpose) is not printed as a traceback."""

    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Server(QuietHTTPServer):
    def __init__(self, address: tuple[str, int], owner: LoopbackServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        """Shut down open keep-alive connections so no handler thread keeps serving after stop."""
        with self.connections_lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class BackgroundServer:
    """Serves a socketserver in a daemon thread from construction until `stop()` (idempotent);
    a context manager that always stops it. Shared by every sandbox server and the fault proxy."""

    host: str
    port: int

    def _start_serving(self, server: socketserver.BaseServer, host: str) -> None:
        self._served = server
        self.host = host
        self.port = int(cast(tuple[str, int], server.server_address)[1])
        self._stopped = False
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def _after_close(self) -> None:
        """Hook run once the listening socket is closed (e.g. to cut keep-alive connections)."""

    def stop(self) -> None:
        """Stop serving and close the listening socket; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._served.shutdown()
        self._served.server_close()
        self._after_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LoopbackServer(BackgroundServer):
    """Base of the sandbox servers: binds at construction, serves in a daemon thread until `stop()`.

    Subclasses implement `handle(request) -> Response`. With a `token`, every request needs
    `Authorization: Bearer <token>` (401 otherwise). `requests` lists (method, path with query) of
    every request received; append `Fault`s to `faults` to inject failures.
    """

    def __init__(self, *, token: str | None = None, port: int = 0, host: str = "127.0.0.1") -> None:
        self.token = token
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), self)
        self._start_serving(self._httpd, host)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8701 (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def handle(self, request: Request) -> Response:
        """Answer one authenticated request; raise `ApiError` for error answers."""
        raise NotImplementedError

    def error_response(self, error: ApiError) -> Response:
        """Render an `ApiError`; the default body is {"error": message, **extra}."""
        return Response(error.status, {"error": error.message, **error.extra})

    def unauthorized(self) -> ApiError:
        """The error for a missing or wrong bearer token."""
        return ApiError(401, "unauthorized")

    def _after_close(self) -> None:
        self._httpd.close_connections()

    def request_count(self, path_prefix: str = "", method: str | None = None) -> int:
        """How many recorded requests start with `path_prefix` (and have `method`, if given)."""
        with self._lock:
            return sum(
                1
                for m, p in self.requests
                if p.startswith(path_prefix) and (method is None or m == method)
            )

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
            return None

    def _authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    def _dispatch(self, request: Request) -> Response:
        try:
            if not self._authorized(request):
                error = self.unauthorized()
                response = self.error_response(error)
                response.headers.setdefault("WWW-Authenticate", "Bearer")
                return response
            return self.handle(request)
        except ApiError as error:
            return self.error_response(error)
        except Exception:  # a sandbox bug must still answer, not hang the client
            return self.error_response(ApiError(500, "internal server error"))


def serve_until_signalled(start: Callable[[], BackgroundServer]) -> int:
    """Run a server in the foreground for a command line: print "listening on <url>", stop
    cleanly on SIGTERM or SIGINT (exit 0); a server that cannot start prints why (exit 2)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = start()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"listening on http://{server.host}:{server.port}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
