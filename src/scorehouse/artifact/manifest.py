"""MANIFEST.json as a typed, immutable `Manifest`: the one module that reads and writes it.

An artifact is verified by the sha256 of its manifest's canonical bytes (`to_bytes`), and
those bytes must not change when a manifest is read and written again (`resign`, shipping a
model to Spark executors, the registry's recorded hash). So every part here keeps what it
does not know (`extra`, the JSON object's unknown keys) and remembers which of its keys the
JSON held (a key it did not hold is not written back while its value is the default). A
manifest built in code writes every key except the `_OPTIONAL` ones left at their default.

The JSON shape (format_version 1; every part may hold more keys, kept as they are)::

    {"format_version": 1, "name": "churn", "description": "",
     "task": "binary" | "multiclass" | "regression", "classes": [label, ...] | null,
     "model": {"flavor": "sklearn", "pickled": true, "runtime": "native" | "onnx",
               "params": {...}},
     "input_schema": {"columns": [{"name", "type", "nullable", ...}, ...]},
     "environment": {"python": "3.11.7", "requirements": {"scikit-learn": "1.5.0", ...}},
     "compiled": {"format": "onnx", "status": "passed" | "failed parity" | "not converted",
                  "file", "opset", "inputs", "outputs", "parity": {...}, "reason", "step"},
     "output_schema": [{"name": "label", "type": "string"}, ...],
     "baseline": {"rows", "sample_rows", "inputs": {column: profile},
                  "predictions": {...}},
     "lineage": {"training_data": {"fingerprint", "rows", "columns", "target", "source"},
                 "params", "metrics", "libraries", "created_at", "created_by",
                 "parent": "churn/3", "retrain_data": {...as training_data}},  # retrains only
     "recipe": {"features": [...], "target": "churned",
                "holdout": {"fraction": 0.2, "seed": 0} | {"path": "holdout.parquet", ...},
                "estimator": "lightgbm.sklearn.LGBMClassifier", "params": {...}
                | "estimator": "sklearn.pipeline.Pipeline", "file": "recipe/estimator.pkl"
                | "function": "module:function"},
     "files": {"model/model.pkl": sha256, ...}, "file_sizes": {"model/model.pkl": bytes}}
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from enum import Enum
from typing import Any, ClassVar, TypeVar

from ..errors import ArtifactError, IntegrityError, UsageError

MANIFEST_FILE = "MANIFEST.json"
#: The newest artifact format this version reads and the one it writes.
FORMAT_VERSION = 1

#: A model (or alias) name: a letter or digit, then letters, digits, '.', '_' or '-'.
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
#: Longest model or alias name.
MAX_NAME = 100

P = TypeVar("P", bound="_Part")


def valid_name(name: str, what: str = "model name") -> str:
    """`name` if it is a valid model or alias name: the one rule of packaging and registry.

    A name starts with a letter or digit and holds letters, digits, '.', '_' or '-', at most
    `MAX_NAME` characters (it becomes a file name, a URL segment and a SQL identifier's stem).
    Also exported as `registry.refs.valid_name`.

    Raises:
        UsageError: (exit 2) the name breaks the rule; the message says the rule.
    """
    if not isinstance(name, str) or not re.fullmatch(NAME, name) or len(name) > MAX_NAME:
        raise UsageError(f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-', "
                         f"starting with a letter or digit (at most {MAX_NAME} characters)")
    return name


def _part(cls: type[_Part], default: Any = None) -> Any:
    """A field holding a nested part (a JSON object read into `cls`), None when absent
    (`default=MISSING`: required)."""
    return field(default=default, metadata={"part": cls})


def _parts(cls: type[_Part]) -> Any:
    """A field holding a list of parts (a JSON array of objects), None when absent."""
    return field(default=None, metadata={"parts": cls})


def _plain(value: Any) -> Any:
    """`value` as plain JSON-ready data: parts as dicts, enums as their values, copies."""
    if isinstance(value, _Part):
        return value.to_dict()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


@dataclass(frozen=True, kw_only=True)
class _Part:
    """A JSON object of the manifest: its known keys as typed fields, the rest in `extra`."""

    #: Keys a part built in code leaves out while they hold their default.
    _OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    #: The object's keys this version does not know, exactly as read (written back as they are).
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: The object's keys in the order read, or None for a part built in code.
    _keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def _fields(cls) -> list[dataclasses.Field[Any]]:
        return [f for f in dataclasses.fields(cls) if f.name not in ("extra", "_keys")]

    @classmethod
    def from_dict(cls: type[P], data: Mapping[str, Any], where: str = MANIFEST_FILE) -> P:
        """The part held by the JSON object `data`; `where` names it in errors.

        Raises:
            IntegrityError: a nested part is not a JSON object (or a list of them).
        """
        if not isinstance(data, Mapping):
            raise IntegrityError(f"{where} is not a JSON object")
        values: dict[str, Any] = {}
        known = set()
        for f in cls._fields():
            known.add(f.name)
            if f.name not in data:
                continue
            value, inner = data[f.name], f"{where}: {f.name}"
            if "part" in f.metadata and value is not None:
                value = f.metadata["part"].from_dict(value, inner)
            elif "parts" in f.metadata and value is not None:
                if not isinstance(value, list):
                    raise IntegrityError(f"{inner} is not a JSON array")
                value = tuple(f.metadata["parts"].from_dict(v, f"{inner}[{i}]")
                              for i, v in enumerate(value))
            else:
                value = copy.deepcopy(value)
            values[f.name] = value
        extra = {k: copy.deepcopy(v) for k, v in data.items() if k not in known}
        return cls(**values, extra=extra, _keys=tuple(data))

    def holds(self, key: str) -> bool:
        """True when the JSON object holds `key` (even as null): what `to_dict` writes."""
        return key in self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: read keys in their order, then the rest; byte-faithful to the read."""
        out: dict[str, Any] = {}
        for f in self._fields():
            value = getattr(self, f.name)
            default = (f.default if f.default is not MISSING
                       else f.default_factory() if f.default_factory is not MISSING else MISSING)
            shown = (f.name in self._keys if self._keys is not None
                     else f.name not in self._OPTIONAL)
            if shown or default is MISSING or value != default:
                out[f.name] = _plain(value)
        out.update(_plain(self.extra))
        if self._keys is None:
            return out
        ordered = {k: out.pop(k) for k in self._keys if k in out}
        return {**ordered, **out}


class CompileStatus(str, Enum):
    """How the conversion to ONNX at packaging ended (`Compiled.status`)."""

    PASSED = "passed"  # converted and within tolerance of the native model: used by default
    FAILED_PARITY = "failed parity"  # converted, but scores differently: not used by default
    NOT_CONVERTED = "not converted"  # a step has no ONNX converter: no graph stored


@dataclass(frozen=True, kw_only=True)
class ModelSection(_Part):
    """`model`: how the model is stored and run."""

    #: The library that saved it: "sklearn", "python", "lightgbm", "xgboost" or "onnx".
    flavor: str
    #: What the manifest claims about unpickling (checked against the flavor, never trusted);
    #: None when it does not say.
    pickled: bool | None = None
    #: The default runtime: "native" (the model's library) or "onnx" (the compiled graph).
    runtime: str = "native"
    #: The model's hyperparameters, {name: JSON value}.
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Parity(_Part):
    """`compiled.parity`: the compiled graph against the native model on the training sample."""

    _OPTIONAL = frozenset({"reason", "max_rel_diff"})

    rows: int = 0  # rows scored by both
    tolerance: float = 0.0  # the largest difference allowed
    #: {output column: largest absolute difference}, e.g. {"probability_yes": 3e-8}.
    max_abs_diff: Mapping[str, float] = field(default_factory=dict)
    #: Regression only: {"value": largest difference relative to max(1, |native value|)}.
    max_rel_diff: Mapping[str, float] | None = None
    label_flips: int = 0  # rows whose label differs (near ties excepted)
    near_ties: int = 0  # rows whose label differs where the native top two classes tie
    passed: bool = False
    reason: str | None = None  # why it failed


@dataclass(frozen=True, kw_only=True)
class Compiled(_Part):
    """`compiled`: the ONNX graph made at packaging and the parity gate's verdict."""

    _OPTIONAL = frozenset({"file", "opset", "inputs", "outputs", "parity", "reason", "step"})

    format: str = "onnx"
    #: One of `CompileStatus`'s values (a str; compare with `CompileStatus.PASSED`).
    status: str | None = None
    file: str | None = None  # the graph's entry in the artifact, "compiled/model.onnx"
    opset: Any = None  # {domain: version}, e.g. {"": 19, "ai.onnx.ml": 3}
    inputs: Sequence[Mapping[str, Any]] | None = None  # [{"name", "type", "shape"}]
    outputs: Sequence[Mapping[str, Any]] | None = None  # [{"name", "type", "shape"}]
    parity: Parity | None = _part(Parity)
    reason: str | None = None  # why it is not used
    step: str | None = None  # the pipeline step that could not be converted


@dataclass(frozen=True, kw_only=True)
class Environment(_Part):
    """`environment`: what the model was saved with (a mismatch at load warns)."""

    python: str | None = None  # "3.11.7"
    requirements: Mapping[str, str] = field(default_factory=dict)  # {distribution: version}


@dataclass(frozen=True, kw_only=True)
class OutputColumn(_Part):
    """One entry of `output_schema`: a column a prediction result holds."""

    name: str = ""  # "label", "probability_<class>" or "value"
    type: str = ""  # "string", "integer" or "number"


@dataclass(frozen=True, kw_only=True)
class Baseline(_Part):
    """`baseline`: the training data's profile, for drift monitoring."""

    rows: int = 0  # rows of training data
    sample_rows: int = 0  # rows scored for the prediction profile
    #: {column: profile}; see `packaging.baseline.input_profile`.
    inputs: Mapping[str, Any] = field(default_factory=dict)
    #: The predictions' profile; see `packaging.baseline.prediction_profile`.
    predictions: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TrainingData(_Part):
    """`lineage.training_data`: which data the model was trained on."""

    fingerprint: str = ""  # "sha256:<hex>" of values, names, dtypes and row order
    rows: int = 0
    columns: Sequence[str] = ()
    target: str | None = None  # the target column, if named
    source: str | None = None  # the file it came from, if a path


@dataclass(frozen=True, kw_only=True)
class Lineage(_Part):
    """`lineage`: where the model came from."""

    _OPTIONAL = frozenset({"parent", "retrain_data"})

    training_data: TrainingData | None = _part(TrainingData)
    params: Mapping[str, Any] = field(default_factory=dict)  # as `model.params`
    metrics: Mapping[str, float] = field(default_factory=dict)  # {"training_roc_auc": 0.91}
    libraries: Mapping[str, str] = field(default_factory=dict)  # {distribution: version}
    created_at: str = ""  # ISO 8601, UTC, seconds
    created_by: str = ""  # the user who packaged it
    #: "churn/3": the registered version this one was retrained from (`scorehouse retrain`).
    parent: str | None = None
    #: All the data `retrain` was given, before its holdout was split off (`training_data`
    #: is the part fitted on): a second retrain on data of this fingerprint is a no-op.
    retrain_data: TrainingData | None = _part(TrainingData)


@dataclass(frozen=True, kw_only=True)
class HoldoutSplit(_Part):
    """`recipe.holdout`: how `retrain` holds rows out of new data to evaluate on: a random
    `fraction` of its rows drawn with `seed`, or (`path` set) a given holdout file."""

    _OPTIONAL = frozenset({"path"})

    fraction: float = 0.2
    seed: int = 0
    path: str | None = None  # a holdout file, as given at packaging

    def describe(self) -> str:
        """'20% of rows, seed 0' or 'the file holdout.parquet', for a terminal."""
        if self.path is not None:
            return f"the file {self.path}"
        return f"{self.fraction:.0%} of rows, seed {self.seed}"


@dataclass(frozen=True, kw_only=True)
class TrainingRecipe(_Part):
    """`recipe`: how to fit the model again on new data (`scorehouse retrain`).

    Either an unfitted copy of the estimator (its parameters, from `sklearn.base.clone`):
    as `estimator` (the class) and JSON `params` for LightGBM and XGBoost, or pickled in
    the artifact's `file` (`artifact.recipe.ESTIMATOR_FILE`) for scikit-learn; or a user's
    `function` ("module:function", called with the training rows and the target column).
    """

    _OPTIONAL = frozenset({"estimator", "params", "file", "function"})

    features: Sequence[str] = ()  # the input columns the estimator is fitted on
    target: str = ""
    holdout: HoldoutSplit | None = _part(HoldoutSplit)
    estimator: str | None = None  # the class, "lightgbm.sklearn.LGBMClassifier"
    params: Mapping[str, Any] | None = None  # its get_params(), JSON (see `artifact.recipe`)
    file: str | None = None  # the pickled unfitted estimator, "recipe/estimator.pkl"
    function: str | None = None  # "module:function"

    @property
    def split(self) -> HoldoutSplit:
        """The holdout split (the default one when the recipe does not say)."""
        return self.holdout or HoldoutSplit()

    def describe(self) -> str:
        """'estimator sklearn.pipeline.Pipeline' or 'function pkg.train:fit'."""
        if self.function is not None:
            return f"function {self.function}"
        return f"estimator {self.estimator}"


@dataclass(frozen=True, kw_only=True)
class Manifest(_Part, Mapping[str, Any]):
    """An artifact's MANIFEST.json. Read with `from_json`/`from_dict`, write with `to_bytes`.

    `input_schema` is the schema layer's JSON form (`schema.Schema.from_dict` reads it): this
    layer sits below the schema layer and does not interpret it.

    For code written when the manifest was a dict, it also reads as a read-only mapping of
    the JSON (`manifest["task"]`, `manifest.get("compiled")`, `{**manifest}`), each lookup a
    fresh copy; new code reads the typed attributes.
    """

    _OPTIONAL = frozenset({"compiled", "output_schema", "baseline", "lineage", "recipe",
                           "files", "file_sizes"})

    format_version: int = FORMAT_VERSION
    name: str
    description: str = ""
    #: "binary", "multiclass" or "regression" ("" when a foreign manifest does not say).
    task: str = ""
    #: The class labels in the model's order (str, int or bool); None for regression.
    classes: Sequence[Any] | None = None
    model: ModelSection = _part(ModelSection, MISSING)
    #: {"columns": [{"name", "type", "nullable", ...}, ...]}: `Schema.to_dict()`.
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    environment: Environment | None = _part(Environment)
    compiled: Compiled | None = _part(Compiled)
    output_schema: Sequence[OutputColumn] | None = _parts(OutputColumn)
    baseline: Baseline | None = _part(Baseline)
    lineage: Lineage | None = _part(Lineage)
    recipe: TrainingRecipe | None = _part(TrainingRecipe)  # None: it cannot be retrained
    files: Mapping[str, str] = field(default_factory=dict)  # {entry: sha256 hex}
    file_sizes: Mapping[str, int] | None = None  # {entry: bytes}; absent in old artifacts

    @classmethod
    def from_json(cls, data: bytes, source: str) -> Manifest:
        """Parse and check MANIFEST.json's bytes; `source` names the artifact in errors.

        Raises:
            IntegrityError: not a JSON object, or lacking a name, model.flavor or files map
                (it was not written by scorehouse), or a part of the wrong JSON type.
            ArtifactError: a newer artifact format than this version reads.
        """
        try:
            raw = json.loads(data)
        except ValueError:
            raise IntegrityError(f"{source}: {MANIFEST_FILE} is not valid JSON") from None
        if not isinstance(raw, dict):
            raise IntegrityError(f"{source}: {MANIFEST_FILE} is not a JSON object")
        version = raw.get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ArtifactError(f"{source} uses artifact format {version!r}; "
                                "upgrade scorehouse to read it")
        model, listed = raw.get("model"), raw.get("files")
        if (not isinstance(raw.get("name"), str) or not isinstance(model, dict)
                or not isinstance(model.get("flavor"), str) or not isinstance(listed, dict)
                or not all(isinstance(n, str) and isinstance(h, str) for n, h in listed.items())):
            raise IntegrityError(f"{source}: {MANIFEST_FILE} lacks a name, model.flavor or files "
                                 "map; it was not written by scorehouse")
        return cls.from_dict(raw, f"{source}: {MANIFEST_FILE}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = MANIFEST_FILE) -> Manifest:
        """The manifest held by a parsed MANIFEST.json (`from_json` checks more first).

        Raises:
            IntegrityError: no name or model.flavor, or a part of the wrong JSON type.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise IntegrityError(f"{where} lacks a name")
        if not isinstance(data.get("model"), Mapping) or "flavor" not in data["model"]:
            raise IntegrityError(f"{where} lacks model.flavor")
        return super().from_dict(data, where)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def to_bytes(self) -> bytes:
        """The canonical JSON bytes (sorted keys, so the sha256 is reproducible)."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, default=str).encode()

    @property
    def runtime(self) -> str:
        """The runtime scoring uses by default: "native" or "onnx"."""
        return self.model.runtime

    @property
    def requirements(self) -> Mapping[str, str]:
        """{distribution: version} the model was saved with ({} when not recorded)."""
        return self.environment.requirements if self.environment else {}

    @property
    def metrics(self) -> Mapping[str, float]:
        """Training and user-supplied metrics ({} when not recorded)."""
        return self.lineage.metrics if self.lineage else {}
