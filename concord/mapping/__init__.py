"""The declarative mapping language: YAML files that compile once into plain Python functions.

``load_mapping(path)`` parses a mapping file, checks it against the canonical model (errors
name file, line, column and field) and returns a ``Mapping`` whose ``apply(record)`` turns one
source record into a canonical dict (inbound) or a CRM property dict (outbound). See
``docs/mappings.md`` for the language.
"""

from __future__ import annotations

from concord.mapping.loader import Mapping, load_mapping, mapping_from_text

__all__ = ["Mapping", "load_mapping", "mapping_from_text"]
