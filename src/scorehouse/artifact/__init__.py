"""The artifact format: manifest, model files in their safest format, hashes, signing, trust."""

from .card_text import CARD_FILE, CardText
from .environment import VersionMismatchWarning
from .files import MANIFEST_FILE, SUFFIX, Artifact, pack, read, read_bytes, resign, write
from .flavors import FLAVORS, ModelInfo, flavor_named, flavor_of
from .manifest import (
    Baseline,
    Compiled,
    CompileStatus,
    Environment,
    HoldoutSplit,
    Lineage,
    Manifest,
    ModelSection,
    OutputColumn,
    Parity,
    TrainingData,
    TrainingRecipe,
    valid_name,
)
from .recipe import ESTIMATOR_FILE

__all__ = [
    "Artifact", "CARD_FILE", "CardText", "ModelInfo", "VersionMismatchWarning",
    "MANIFEST_FILE", "SUFFIX", "FLAVORS",
    "flavor_of", "flavor_named", "pack", "read", "read_bytes", "resign", "write",
    "Manifest", "ModelSection", "Compiled", "CompileStatus", "Parity", "Environment",
    "OutputColumn", "Baseline", "Lineage", "TrainingData", "valid_name",
    "HoldoutSplit", "TrainingRecipe", "ESTIMATOR_FILE",
]
