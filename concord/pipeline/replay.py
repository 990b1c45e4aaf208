"""Replay: staged records are mapped again when the mapping that mapped them has changed.

Raw staging keeps every payload, and each staged record remembers the fingerprint of the mapping
that last mapped it (``raw_state.mapped_fp``; canonical rows keep it as ``mapping_fp``). Before
an entity is mapped, records mapped by another fingerprint are marked pending again, so a fixed
mapping reaches records whose payload never changed, open rejects included, and the map report
says how many were replayed. ``concord remap`` replays an entity whatever its fingerprint.
"""

from __future__ import annotations

import orjson

from concord.hashing import digest
from concord.mapping import Mapping
from concord.model import ENTITY_MODELS
from concord.store import Store


def mapping_fingerprint(mapping: Mapping) -> str:
    """What decides a mapped row: the generated code, its lookup tables, the canonical model.

    Comments and layout of the file do not count; a change to the model does (a concord
    upgrade that changes the canonical model replays too).
    """
    model = ENTITY_MODELS.get(mapping.entity)
    schema = orjson.dumps(model.model_json_schema(), option=orjson.OPT_SORT_KEYS) if model else b""
    body = mapping.python_source.encode() + repr(mapping.spec.tables).encode() + schema
    return digest(body)


def replay_changed(store: Store, source: str, entity: str, fingerprint: str) -> int:
    """Mark records mapped by another mapping pending again; return how many."""
    return store.mark_for_replay(source, entity, unless_fp=fingerprint)


def replay_all(store: Store, source: str, entity: str) -> int:
    """Mark every staged record of the entity pending again (``concord remap``)."""
    return store.mark_for_replay(source, entity)
