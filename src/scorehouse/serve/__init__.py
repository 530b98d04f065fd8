"""The real-time service: MLflow, Open Inference (V2) and native endpoints, one Scorer each."""

from .app import create_app
from .deployments import DeploymentSet
from .models import ModelSet

__all__ = ["DeploymentSet", "create_app", "ModelSet"]
