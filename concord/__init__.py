"""concord: pull ERPs, map to one canonical customer, resolve identities, push a 360 to CRMs."""

__version__ = "0.1.0"
