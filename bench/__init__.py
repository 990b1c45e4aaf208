"""Benchmarks of concord at scale: `python -m bench` generates seeded ERP data, serves it from
sandbox servers in subprocesses, runs the nightly sync and a peer, and writes a report under
bench/results/."""
