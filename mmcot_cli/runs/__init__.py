"""Runs: what training writes and inference reads about a run, below both of them.

Modules: meta (RunMeta, the one schema of run_config.json), rationales (the stage-1 → stage-2 hand-off, by qid),
original_rationales (the original's positional stage-1 outputs → rationales by qid, `rationales import --format
mm-cot`).
May import: data, registry and the ground floor.
"""
