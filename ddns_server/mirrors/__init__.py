"""Upstream mirrors: every change of a served zone pushed to a provider.

One module per provider, each a `Provider` (base.py); the engine (engine.py)
turns the journal after a mirror's cursor into RRset pushes.
"""
