"""Pushing customers to CRMs: only what changed, merges resolved, one outcome per record.

``diff`` compares each customer's outbound properties with what the target last accepted;
``merges`` finds merged-away customers a target still holds; ``send`` sends a batch and stores
its outcomes; ``plan`` is the field-level plan of a push (``concord push --dry-run``). The stage
that runs them is ``concord.pipeline.push``.
"""
