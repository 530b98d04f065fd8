"""The demo: the whole flow on embedded defaults, on synthetic customer-churn data."""

from .data import churn_frame, dirty_batch
from .run import run_demo, train_pipeline

__all__ = ["churn_frame", "dirty_batch", "run_demo", "train_pipeline"]
