"""Identity resolution: which source customer records are the same customer.

``normalise`` makes names, emails, tax ids, phones and postcodes comparable; ``linking`` applies
the configured rules (``blocking`` picks the pairs ``fuzzy_name`` compares) under the manual
overrides of ``constraints``; ``ids`` keeps concord ids stable across runs; ``survivorship``
picks each golden value; ``explain`` says why two records are or are not one customer. The
resolve stage that runs all this and writes the store is ``concord.pipeline.resolve``.
"""
