"""The origin guard and the size guard every request of the kit passes, and URLs fit for messages.

``OriginGuard`` holds the origins (scheme, host, port) a connector was configured with: its base
URL and any other URL written in its config (a SOAP source's WSDL URL and addresses, an OAuth
token URL for the token client). A URL on any other origin is refused before anything is sent:
a next-link to a foreign host, a WSDL whose ``soap:address`` names another server. So
credentials, which are attached to every request the kit sends, never reach another host.

``SizeGuard`` refuses an answer larger than ``max_response_bytes``: at once when its
``Content-Length`` says so, else while reading, without keeping the body.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import requests

from concord.redact import redact


class Origin(NamedTuple):
    """Scheme, lower-case host and port (default ports filled in) of a URL."""

    scheme: str
    host: str
    port: int | None

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}" + (f":{self.port}" if self.port else "")


def origin(url: str) -> Origin:
    """The origin of ``url``."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return Origin(parts.scheme, (parts.hostname or "").lower(), port)


def safe_url(url: str) -> str:
    """URL for messages: no userinfo, secret-looking query values masked."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return redact(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))


class OriginGuard:
    """The origins one connector may send to; every other URL is refused before sending."""

    def __init__(self, urls: Iterable[str]) -> None:
        self.origins = frozenset(origin(u) for u in urls)

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be sent to, or None when it is on a configured origin."""
        if origin(url) in self.origins:
            return None
        allowed = ", ".join(sorted(str(o) for o in self.origins)) or "none configured"
        return (
            f"refusing to send to another host: {safe_url(url)} is not on a configured "
            f"origin ({allowed})"
        )


class ResponseTooLarge(Exception):
    """An answer over the size cap (the kit turns it into the connector's error)."""


class SizeGuard:
    """Reads a streamed answer, refusing it past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def read(self, resp: requests.Response) -> bytes:
        """The whole body, or ``ResponseTooLarge`` (the connection is closed, nothing kept)."""
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            resp.close()
            raise ResponseTooLarge(
                f"response of {declared} bytes exceeds max_response_bytes={self.limit}"
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > self.limit:
                resp.close()
                raise ResponseTooLarge(f"response exceeds max_response_bytes={self.limit}")
            chunks.append(chunk)
        return b"".join(chunks)
