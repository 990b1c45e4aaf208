"""What a connector's ``http:`` section sets: timeouts, retries, size cap, rate and TLS.

One ``HttpSettings`` serves REST sources, SOAP sources and CRM targets alike, so a key means the
same everywhere (``http.requests_per_second`` limits a SOAP source as it limits a REST one). TLS
is one ``http.tls`` block: verification on unless switched off, an optional CA bundle and an
optional client certificate (mTLS). The older spellings ``http.verify_tls`` and a SOAP source's
top-level ``tls:`` are still read, with a warning naming the new key.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger("connectors.http")


class TlsSettings(BaseModel):
    """TLS for every call of one connector: verified unless ``verify: false`` is written."""

    model_config = ConfigDict(extra="forbid")

    verify: bool = True
    ca_bundle: str | None = Field(default=None, description="PEM file of trusted CAs")
    client_cert: str | None = Field(default=None, description="PEM client certificate (mTLS)")
    client_key: str | None = Field(default=None, description="its key, when not in client_cert")

    def apply(self, session: requests.Session) -> None:
        """Set verification, the CA bundle and the client certificate on ``session``."""
        session.verify = self.ca_bundle if (self.verify and self.ca_bundle) else self.verify
        if self.client_cert:
            session.cert = (
                (self.client_cert, self.client_key) if self.client_key else self.client_cert
            )


class HttpSettings(BaseModel):
    """Network behaviour of one connector (all have safe defaults)."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=30.0, gt=0, description="seconds to connect and per read")
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)
    retry_after_max: float = Field(default=120.0, ge=0)
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    requests_per_second: float | None = Field(default=None, gt=0)
    tls: TlsSettings = Field(default_factory=TlsSettings)

    @model_validator(mode="before")
    @classmethod
    def _legacy_verify_tls(cls, value: Any) -> Any:
        if isinstance(value, dict) and "verify_tls" in value:
            value = dict(value)
            legacy = value.pop("verify_tls")
            log.warning("http.verify_tls is read as http.tls (verify, ca_bundle); write that")
            tls = dict(value.get("tls") or {})
            if isinstance(legacy, str):
                tls.setdefault("ca_bundle", legacy)
            else:
                tls.setdefault("verify", legacy)
            value["tls"] = tls
        return value


def fold_legacy_tls(section: dict[str, Any]) -> dict[str, Any]:
    """A section whose top-level ``tls:`` (the SOAP source's old key) moved into ``http.tls``."""
    if "tls" not in section:
        return section
    section = dict(section)
    tls = section.pop("tls")
    log.warning("a source's 'tls' is read as 'http.tls'; write it there")
    http = dict(section.get("http") or {})
    http.setdefault("tls", tls)
    section["http"] = http
    return section
