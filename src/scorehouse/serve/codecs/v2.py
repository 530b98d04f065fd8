"""The Open Inference Protocol (KServe V2): JSON tensors and the binary tensor extension.

Each schema column is one input tensor of shape [N] or [N, 1] (BYTES for strings, FP64 or
INT64 for numbers). Outputs: `label` [N] and `probabilities` [N, k] for classifiers,
`value` [N] for regressors. Binary data follows the JSON header, whose length the
`Inference-Header-Content-Length` header gives; BYTES elements carry a 4-byte length.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from ...errors import InvalidInputError
from ...schema.arrays import loose_array
from ...scorer import Result, Scorer
from . import jsonbody

HEADER = "Inference-Header-Content-Length"
DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
          "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
          "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
#: Every datatype an input may have, and the bytes per value of the fixed-width ones.
_DATATYPES = frozenset(DTYPES) | {"BYTES"}
_WIDTHS = {name: np.dtype(kind).itemsize for name, kind in DTYPES.items()}
#: One little-endian value of each fixed-width datatype.
_ONE = {name: struct.Struct("<" + code) for name, code in zip(DTYPES, "?BHIQbhiqefd", strict=True)}


def model_metadata(scorer: Scorer) -> dict[str, Any]:
    """`GET /v2/models/{m}`: name, versions, platform and tensors from the model schema."""
    inputs = [{"name": c.name, "datatype": c.type.v2_datatype, "shape": [-1, 1]}
              for c in scorer.schema.columns]
    return {"name": scorer.name, "versions": [str(scorer.public_version)],
            "platform": f"scorehouse-{scorer.artifact.flavor}-{scorer.runtime.name}",
            "inputs": inputs, "outputs": outputs_metadata(scorer)}


def outputs_metadata(scorer: Scorer) -> list[dict[str, Any]]:
    """The output tensors a model returns."""
    return _tensors(scorer.task, scorer.classes)


def _tensors(task: str, classes: list[Any] | None) -> list[dict[str, Any]]:
    """The output tensors of a model of `task` and `classes`."""
    if task == "regression":
        return [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    classes = classes or []
    label = "INT64" if classes and all(isinstance(c, int) for c in classes) else "BYTES"
    return [{"name": "label", "datatype": label, "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]}]


def decode(body: bytes, header_length: str | None
           ) -> tuple[dict[str, Any] | pa.Table, dict[str, Any]]:
    """(the inputs, the request's JSON header) from an infer request.

    The inputs of one row are one record `{input name: value}`, as an MLflow or native
    client sends it, scored on the scorer's one-row path; more rows are an Arrow table of
    one column per input.

    Raises:
        InvalidInputError: a malformed request, naming the input and what is wrong.
    """
    json_part, binary = body, b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise InvalidInputError(f"{HEADER} must be an integer, got {header_length!r}") from None
        if not 0 <= n <= len(body):
            raise InvalidInputError(f"{HEADER} {n} is outside the body of {len(body)} bytes")
        json_part, binary = body[:n], body[n:]
    doc = jsonbody.loads(json_part, "the inference request")
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise InvalidInputError('an inference request needs "inputs": a non-empty list of tensors')
    columns: dict[str, Any] = {}
    offset = 0
    rows = None
    for t in doc["inputs"]:
        name, values, offset = _tensor(t, binary, offset)
        n = len(values)
        if rows is not None and n != rows:
            raise InvalidInputError(f"input {name!r} has {n} rows, the others {rows}")
        rows = n
        columns[name] = values
    if offset != len(binary):
        raise InvalidInputError(f"{len(binary) - offset} bytes of binary data are not claimed by "
                                "any input's binary_data_size")
    if rows == 1:
        # The shape MLServer, KServe and Triton clients send per request: building an Arrow
        # table and validating it as a batch would cost ten times what the row does. (A
        # one-value tensor is read into a plain Python value, binary ones too.)
        return {name: values[0] for name, values in columns.items()}, doc
    return pa.table({name: _array(name, values) for name, values in columns.items()}), doc


def _array(name: str, values: Any) -> pa.Array:
    try:
        return loose_array(values)
    except (OverflowError, pa.ArrowException) as e:  # e.g. an integer beyond 64 bits
        raise InvalidInputError(f"input {name!r}: cannot read its data ({e}); numbers must "
                                "fit in 64 bits") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    """`value` if it is a JSON object (or absent: {}), else InvalidInputError."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _tensor(t: Any, binary: bytes, offset: int) -> tuple[str, Any, int]:
    # (name, values, offset of the next binary input). Written for speed: a one-row request
    # of a dozen inputs passes here a dozen times, and each pass costs what scoring the row
    # does in a few microseconds.
    name = t.get("name") if isinstance(t, dict) else None
    if not isinstance(name, str):
        raise InvalidInputError("each input needs a name, a shape, a datatype and data")
    dtype = t.get("datatype")
    if not isinstance(dtype, str) or dtype not in _DATATYPES:
        raise InvalidInputError(f"input {name!r}: unsupported datatype {dtype!r}")
    count = _count(name, t.get("shape"))
    parameters = t.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        _object(parameters, f"input {name!r}: parameters")  # raises, naming the input
    size = None if parameters is None else parameters.get("binary_data_size")
    if size is None:
        return name, _from_json(name, dtype, t.get("data"), count), offset
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 \
            or offset + size > len(binary):
        raise InvalidInputError(f"input {name!r}: binary_data_size {size!r} runs past the body")
    return name, _from_binary(name, dtype, binary[offset:offset + size], count), offset + size


def _count(name: str, shape: Any) -> int:
    """N of a shape [N] or [N, 1] (N >= 0), else InvalidInputError."""
    if isinstance(shape, list) and 1 <= len(shape) <= 2:
        n = shape[0]
        if isinstance(n, int) and n >= 0 and (len(shape) == 1 or (
                isinstance(shape[1], int) and shape[1] == 1)):
            return n
    raise InvalidInputError(f"input {name!r}: shape must be [N] or [N, 1], got {shape!r}")


def _from_binary(name: str, dtype: str, raw: bytes, count: int) -> Any:
    if dtype == "BYTES":
        out, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise InvalidInputError(f"input {name!r}: truncated BYTES element")
            (n,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + n > len(raw):
                raise InvalidInputError(f"input {name!r}: truncated BYTES element")
            out.append(raw[pos:pos + n].decode("utf-8", "replace"))
            pos += n
        values: Any = out
    else:
        width = _WIDTHS[dtype]
        if len(raw) != count * width:
            raise InvalidInputError(f"input {name!r}: {len(raw)} bytes for {count} {dtype} values "
                                    f"(expected {count * width})")
        # One value (a one-row request) is read straight into a Python number.
        values = [_ONE[dtype].unpack(raw)[0]] if count == 1 else \
            np.frombuffer(raw, dtype=DTYPES[dtype])
    if len(values) != count:
        raise InvalidInputError(f"input {name!r}: shape says {count} values, data has {len(values)}")
    return values


def _from_json(name: str, dtype: str, data: Any, count: int) -> list[Any]:
    # The values as given (the schema's rules coerce and check them); BYTES as text.
    if not isinstance(data, list):
        raise InvalidInputError(f"input {name!r}: data must be a list")
    if len(data) != count:
        raise InvalidInputError(f"input {name!r}: shape says {count} values, data has {len(data)}")
    if count == 1:  # one row: no comprehension to run
        v = data[0]
        if isinstance(v, list) and len(v) == 1:
            v = v[0]
        return [v if v is None or dtype != "BYTES" else str(v)]
    flat = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
    if dtype == "BYTES":
        return [None if v is None else str(v) for v in flat]
    return flat


def requested_binary(doc: dict[str, Any]) -> dict[str, bool]:
    """Which outputs the client wants as binary data (by name; '*' for the default)."""
    default = bool(_object(doc.get("parameters"), "parameters").get("binary_data_output", False))
    wanted = {"*": default}
    for o in _outputs_asked(doc):
        wanted[o["name"]] = bool(_object(o.get("parameters"), f"output {o['name']!r}: parameters")
                                 .get("binary_data", default))
    return wanted


def _outputs_asked(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's "outputs": a list of objects with a string name each, or none."""
    outputs = doc.get("outputs")
    if outputs is None:
        return []
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise InvalidInputError('"outputs" must be a list of {"name": "<output>"} objects')
    return outputs


def encode(result: Result, scorer: Scorer | None, doc: dict[str, Any],
           answered: dict[str, Any] | None = None) -> tuple[bytes, int | None]:
    """(response body, JSON header length when binary outputs follow it).

    `scorer` names the model (`model_name`, `model_version`); for a deployment's request
    (None then) `answered` says who answered: `model_name` is the deployment's,
    `model_version` the answering model's, and `parameters` say the rest.
    """
    tensors = _outputs(result)
    asked = [o["name"] for o in _outputs_asked(doc)]
    unknown = [n for n in asked if n not in tensors]
    if unknown:
        raise InvalidInputError(f"unknown output(s) {', '.join(unknown)}; this model returns "
                                f"{', '.join(tensors)}")
    binary = requested_binary(doc)
    outputs, blobs = [], []
    for name in asked or list(tensors):
        dtype, array = tensors[name]
        spec: dict[str, Any] = {"name": name, "datatype": dtype, "shape": list(array.shape)}
        if binary.get(name, binary["*"]):
            blob = _to_binary(dtype, array)
            spec["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            spec["data"] = array.reshape(-1).tolist()
        outputs.append(spec)
    answer = {"model_name": scorer.name if scorer else result.model,
              "model_version": str(scorer.public_version) if scorer else "",
              "id": doc.get("id", ""), "outputs": outputs}
    if not result.column_check.clean:
        # Absent optional / unknown inputs (schema.policy); V2 parameters hold plain values.
        answer["parameters"] = {"columns": result.column_check.describe()}
    if answered is not None:
        answer["model_name"] = answered["deployment"]
        answer["model_version"] = "" if answered["version"] is None else str(answered["version"])
        answer["parameters"] = {**answer.get("parameters", {}), **parameters(answered)}
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def parameters(answered: dict[str, Any]) -> dict[str, Any]:
    """Who answered as V2 `parameters`: plain values only (a V2 parameter is a bool, a
    number or a string), None left out."""
    return {k: v for k, v in answered.items() if isinstance(v, (bool, int, float, str))}


def value_tensor(values: list[Any]) -> dict[str, Any]:
    """The output tensor `value` of a deployment's default answer: BOOL, FP64 or BYTES,
    as the values are (JSON data)."""
    if all(isinstance(v, bool) for v in values):
        dtype, data = "BOOL", values
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        dtype, data = "FP64", [float(v) for v in values]
    else:
        dtype, data = "BYTES", ["" if v is None else str(v) for v in values]
    return {"name": "value", "datatype": dtype, "shape": [len(values)], "data": data}


def _outputs(result: Result) -> dict[str, tuple[str, np.ndarray]]:
    o = result.output
    if result.task == "regression":
        return {"value": ("FP64", np.asarray(o.values, dtype=np.float64))}
    label_type = _tensors(result.task, result.classes)[0]["datatype"]
    assert o.labels is not None  # a classifier's output always has labels
    dtype: type = np.int64 if label_type == "INT64" else object
    labels: np.ndarray = np.asarray([v.item() if isinstance(v, np.generic) else v for v in o.labels],
                        dtype=dtype)
    return {"label": (label_type, labels),
            "probabilities": ("FP64", np.asarray(o.probabilities, dtype=np.float64))}


def _to_binary(dtype: str, array: np.ndarray) -> bytes:
    if dtype == "BYTES":
        parts = []
        for v in array.reshape(-1):
            b = str(v).encode()
            parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
