"""Loopback sandbox servers that imitate a REST ERP and a HubSpot-style CRM for the demo and the
integration tests: `RestErpServer` serves a deterministic `ErpDataset`, `CrmServer` keeps upserted
objects in memory, and both share `LoopbackServer` (lifecycle, bearer auth, request log, `Fault`
injection)."""

from sandbox.crm import CrmServer
from sandbox.erp_data import ENTITIES, ErpDataset, ErpStorage
from sandbox.rest_erp import RestErpServer
from sandbox.server import ApiError, Fault, LoopbackServer, Request, Response

__all__ = [
    "ENTITIES",
    "ApiError",
    "CrmServer",
    "ErpDataset",
    "ErpStorage",
    "Fault",
    "LoopbackServer",
    "Request",
    "Response",
    "RestErpServer",
]
