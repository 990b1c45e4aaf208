"""Connectors: ERP sources (``erp``) and CRM targets (``crm``) implementing concord's contracts."""
