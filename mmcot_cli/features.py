"""Former home of the feature store and extraction, kept so existing imports keep working.

The store format, reads and the chunk writer live in mmcot_cli/store.py; extraction, sharding, resume and merge
in mmcot_cli/extract.py.
"""

from mmcot_cli.errors import DataError, MMCoTError, UsageError  # noqa: F401  (scripts caught these from here)
from mmcot_cli.extract import (MERGED_SHARD_BYTES, ExtractConfig, ShapeError, default_workers, extract,  # noqa: F401
                               merge, parse_shard)
from mmcot_cli.store import (DEFAULT_CHUNK_SIZE, DTYPES, FORMAT, IDENTITY_KEYS, ChunkRef, ChunkWriter,  # noqa: F401
                             DataFile, FeatureStore, StoreMismatchError, build_index, import_features,
                             open_store, read_data_file, refresh_store_files, scan_data_files, summarize)
