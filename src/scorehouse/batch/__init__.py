"""Batch scoring: files, folders and tables in, scores out, in bounded memory."""

from .endpoints import is_database, open_cache, open_input, open_output, side_files
from .progress import Progress
from .rejects import RejectsFile
from .run import Interrupted, Options, run
from .streams import Malformed, Sink, Source

__all__ = ["open_input", "open_output", "open_cache", "side_files", "is_database", "run",
           "Options", "Progress", "RejectsFile", "Interrupted", "Source", "Sink", "Malformed"]
