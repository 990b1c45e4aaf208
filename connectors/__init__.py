"""Connectors: ERP sources (``erp``) and CRM targets (``crm``) on one HTTP kit (``http``)."""
