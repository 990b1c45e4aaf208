"""The staging hash is taken over a canonical form: key order and number spelling do not count."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from concord.hashing import canonical_json, record_digest

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=8), st.integers(0, 1000))
def test_a_record_hashes_the_same_whatever_its_key_order(record: dict[str, Any], seed: int) -> None:
    assert record_digest(shuffled(record, random.Random(seed))) == record_digest(record)


def test_integral_floats_and_ints_are_one_number_and_other_changes_count() -> None:
    assert record_digest({"a": 1.0, "b": [2.0]}) == record_digest({"b": [2], "a": 1})
    assert record_digest({"a": 1.5}) != record_digest({"a": 1})
    assert record_digest({"a": "1"}) != record_digest({"a": 1})
    assert record_digest({"a": True}) != record_digest({"a": 1})
    assert canonical_json({"b": 1, "a": {"d": 2.0, "c": None}}) == b'{"a":{"c":null,"d":2},"b":1}'
