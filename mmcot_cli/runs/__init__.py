"""Runs: what training writes and inference reads about a run, below both of them.

Modules: meta (RunMeta, the one schema of run_config.json), rationales (the stage-1 → stage-2 hand-off, by qid).
May import: data and the ground floor.
"""
