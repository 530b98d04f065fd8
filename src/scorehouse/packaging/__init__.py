"""Building artifacts: schema inference, baseline, lineage and metrics around a trained model."""

from .build import package, read_frame

__all__ = ["package", "read_frame"]
