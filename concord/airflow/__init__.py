"""How Airflow runs the nightly sync: the task plan, DAG settings and task bodies.

The DAG file (``dags/concord_nightly.py``) only wires tasks; everything it needs to decide lives
here and is testable without Airflow: which extract/map/push tasks exist (``plan``: sources x
entities x shards, grouped by pool, as typed task items), the DAG's knobs (``settings``), and
the task bodies that take plain ids, open their own context and call the same stage functions
as the CLI (``tasks``).
"""
