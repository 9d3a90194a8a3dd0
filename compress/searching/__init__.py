"""Searching the once-for-all supernet for the best sub-generator under a MACs or latency budget.

``candidates`` scores one sub-network (fidelity / mIoU / FID on held-out pairs, MACs, latency),
``evolution`` proposes configs (evolutionary or exhaustive), ``results`` keeps the resumable table
of scored candidates and the Pareto front, ``latency`` measures and caches latencies.
The command ``python -m compress.search`` ties them together.
"""
