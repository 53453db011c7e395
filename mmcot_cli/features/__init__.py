"""Vision features: the memory-mapped store, extraction into it, and import of the original's feature files.

Modules: store (format, chunk writer, mmap reads, identity checks), store_index (qid → file and row, chunks,
the manifest summary), store_files (one data file: header, CRC-32,
atomic write), store_images (which image each row came from, by content; --skip-bad retries), extract (batching, sharding, resume, merge), original_features (`mmcot import-features`),
settings (the options of extract and import-features, numpy-free).
May import: registry, data and the ground floor.
"""
