"""Reporting: results people read — the HTML report (page, charts, error gallery) and `mmcot compare`.

Modules: report (collecting runs), html (the page), gallery (error gallery), charts (PNG charts), compare (tables
side by side), published (published numbers, always marked as such).
May import: evaluation, runs, data and the ground floor; never training or inference.
"""
