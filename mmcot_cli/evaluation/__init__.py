"""Evaluation: scoring predictions against DATA_DIR records.

Modules: score (ScienceQA accuracy by category, the answer-resolution rules), own_formats (per-group and A-OKVQA
accuracy, the official A-OKVQA export), score_data (the scorer for a prepared format), predictions (reading predictions files), rationale_metrics (mmcot's
ROUGE-L / BLEU / similarity on normalised text: one table of metrics), original_metrics (the same metrics as the
original computes them: get_scores and its validation ROUGE-L, raw text), similarity (the original's sentence-embedding similarity), kinds (which
columns a score object shows, by the data format's scoring kind), baselines (chance and majority-class accuracy,
collapsed predictions).
May import: data and the ground floor.
"""
