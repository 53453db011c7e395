"""Evaluation: scoring predictions against DATA_DIR records.

Modules: score (ScienceQA accuracy by category, the answer-resolution rules), groups (per-group and A-OKVQA
accuracy, the official A-OKVQA export), predictions (reading predictions files), rationale_metrics (ROUGE-L /
BLEU: one table of metrics).
May import: data and the ground floor.
"""
