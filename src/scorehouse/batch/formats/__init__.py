"""Batch files: CSV (plain, gzip, zstd), Parquet (a file, folder or glob) and JSON Lines.

One module per format, its reader and writer together (`csv`, `parquet`, `jsonl`); the
byte-stream plumbing they share in `plumbing`; choosing a format, opening a file and the
file Sink in `files`. Readers yield Arrow record batches of bounded size.
"""

from .files import FORMATS, FileSink, format_of, open_file
from .jsonl import records_batch
from .plumbing import conform

__all__ = ["FORMATS", "FileSink", "format_of", "open_file", "records_batch", "conform"]
