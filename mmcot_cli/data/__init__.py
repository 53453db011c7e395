"""Data: the DATA_DIR schema and its I/O, the readers that write it, and the text built from records.

Modules: records (DATA_DIR record schema, read/write), json_stream (one big JSON object, e.g. problems.json, read
member by member in bounded memory), readers/ (one reader per source format + the format
registry), prompts (prompt formats and stage presets), answers (option letters, answer parsing), leakage (qids in
two splits), carve (one split carved into seeded, stratified train/val/test), images (decoding a record's image), teacher (teacher rationales: import, filter, expand).
May import: the ground floor only (errors, io, outputs, progress, validate).
"""
