"""Batch scoring: files, folders and tables in, scores out, in bounded memory.

The entry point is `run_job(scorer, BatchJob(...))`, which returns the run's `RunManifest`;
`run_deployment(rendezvous, BatchJob(...))` runs the same job through a deployment.
"""

from ..scorer.runs import RunManifest, RunOptions
from .addresses import is_database, open_cache, open_input, open_output, side_files
from .job import BatchJob, run_deployment, run_job
from .progress import Progress
from .rejects import RejectsFile
from .run import Interrupted, run
from .sources_sinks import Malformed, Sink, Source

#: The run options under the name the batch channel always gave them.
Options = RunOptions

__all__ = ["run_job", "run_deployment", "BatchJob", "RunManifest", "RunOptions", "Options", "open_input",
           "open_output", "open_cache", "side_files", "is_database", "run", "Progress",
           "RejectsFile", "Interrupted", "Source", "Sink", "Malformed"]
