"""The OpenAPI document of a server, with request schemas built from each model's schema."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..scorer import Scorer, output_columns

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}
_MLFLOW_ERROR = {"type": "object", "properties": {"message": {"type": "string"},
                                                   "error_code": {"type": "string"}}}


def record_schema(scorer: Scorer) -> dict[str, Any]:
    """A JSON Schema for one input record of `scorer`'s model."""
    props: dict[str, Any] = {}
    for c in scorer.schema.columns:
        p: dict[str, Any] = c.type.json_schema  # {"type": ...} (+ "format": "date-time")
        if c.nullable:
            p["type"] = [p["type"], "null"]
        if c.categories:  # examples, not an enum: unseen categories are scored and flagged
            p["examples"] = list(c.categories)[:5]
        props[c.name] = p
    required = [c.name for c in scorer.schema.columns if not c.nullable]
    return {"type": "object", "properties": props, "required": required}


def label_schema(scorer: Scorer) -> dict[str, Any]:
    """The JSON Schema of the label a classifier answers (typed like its classes)."""
    classes = list(scorer.classes or [])
    if classes and all(isinstance(c, bool) for c in classes):
        kind = "boolean"
    elif classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        kind = "integer"
    elif classes and all(isinstance(c, (int, float)) for c in classes):
        kind = "number"
    else:
        kind = "string"
    return {"type": kind, **({"enum": classes} if classes else {})}


def prediction_schema(scorer: Scorer) -> dict[str, Any]:
    """One prediction of the MLflow route: a typed label and number probabilities, or value."""
    return {"type": "object", "properties": {
        c: label_schema(scorer) if c == "label" else {"type": "number"}
        for c in output_columns(scorer.task, scorer.classes)}}


def example_record(scorer: Scorer) -> dict[str, Any]:
    """A valid record for the model (`Schema.example_record`)."""
    return scorer.schema.example_record()


def _responses(ok: dict[str, Any], mlflow: bool = False) -> dict[str, Any]:
    err = {"content": {"application/json": {"schema": _MLFLOW_ERROR if mlflow else _ERROR}}}
    return {"200": {"description": "Scored", "content": {"application/json": {"schema": ok}}},
            "400": {"description": "Bad request", **err},
            "401": {"description": "Missing or invalid API key", **err},
            "404": {"description": "Unknown model or version", **err},
            "408": {"description": "Body not sent in time", **err},
            "413": {"description": "Body or row count over the limit", **err},
            "422": {"description": "Every row rejected", **err},
            "503": {"description": "Models still loading", **err},
            "504": {"description": "Over the request timeout", **err}}


#: A version in a path: digits (anything else is a 404).
_VERSION = {"name": "version", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"}}


def _op(op_id: str, summary: str, responses: dict[str, Any], body: dict[str, Any] | None = None,
        pinned: bool = False, open_: bool = False) -> dict[str, Any]:
    """One operation; `pinned` adds the {version} path parameter, `open_` needs no key."""
    op: dict[str, Any] = {"summary": summary, "operationId": op_id, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if pinned:
        op["parameters"] = [_VERSION]
    if open_:
        op["security"] = []
    return op


def _mlflow_body(ref: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {
        "dataframe_records": {"type": "array", "items": ref, "maxItems": 1000}},
        "required": ["dataframe_records"]}


def _model_paths(name: str, scorer: Scorer, ref: dict[str, Any]) -> dict[str, Any]:
    """Every route of one model, current version and pinned (`/versions/{version}`)."""
    predict = {"oneOf": [ref, {"type": "array", "items": ref, "maxItems": 1000}]}
    mlflow_ok = _responses({"type": "object", "properties": {
        "predictions": {"type": "array", "items": prediction_schema(scorer)}}}, mlflow=True)
    infer = {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "items": {"type": "object", "required": [
            "name", "shape", "datatype", "data"], "properties": {
            "name": {"type": "string", "enum": scorer.schema.names},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array"}}}}}}
    metadata = _responses({"type": "object"})
    paths: dict[str, Any] = {}
    for pinned, prefix, at in ((False, f"/models/{name}", ""),
                               (True, f"/models/{name}/versions/{{version}}", "_pinned")):
        paths[f"{prefix}/predict"] = {"post": _op(
            f"predict_{name}{at}", f"Score {name}: one record or a list; labels, "
            "probabilities, flags", _responses({"type": "object"}), predict, pinned)}
        paths[f"{prefix}/invocations"] = {"post": _op(
            f"invocations_{name}{at}", f"Score {name} with MLflow's protocol", mlflow_ok,
            _mlflow_body(ref), pinned)}
    for pinned, prefix, at in ((False, f"/v2/models/{name}", ""),
                               (True, f"/v2/models/{name}/versions/{{version}}", "_pinned")):
        paths[prefix] = {"get": _op(f"v2_metadata_{name}{at}", f"V2 metadata of {name}",
                                    metadata, pinned=pinned)}
        paths[f"{prefix}/ready"] = {"get": _op(f"v2_ready_{name}{at}", f"V2 readiness of {name}",
                                               metadata, pinned=pinned)}
        paths[f"{prefix}/infer"] = {"post": _op(
            f"v2_infer_{name}{at}", f"V2 inference on {name} (JSON tensors; binary tensors "
            "also accepted)", _responses({"type": "object"}), infer, pinned)}
    return paths


def document(models: dict[str, Scorer], secured: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the models served: every route the server answers."""
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for name, scorer in models.items():
        rec = f"{name}_record"
        components[rec] = dict(record_schema(scorer), examples=[example_record(scorer)])
        paths.update(_model_paths(name, scorer, {"$ref": f"#/components/schemas/{rec}"}))
    any_record = ({"$ref": f"#/components/schemas/{next(iter(models))}_record"}
                  if len(models) == 1 else {"type": "object"})
    paths["/invocations"] = {"post": _op(
        "invocations", "Score the server's one model with MLflow's protocol (400 when it "
        "serves several)", _responses({"type": "object"}, mlflow=True),
        _mlflow_body(any_record))}
    paths["/v2"] = {"get": _op("v2_server", "V2 server metadata", _responses({"type": "object"}))}
    for path, summary in (("/v2/health/live", "Liveness"), ("/v2/health/ready", "Readiness"),
                          ("/ping", "MLflow health"), ("/health", "MLflow health"),
                          ("/version", "scorehouse version"), ("/metrics", "Prometheus metrics"),
                          ("/openapi.json", "This document"), ("/docs", "Swagger UI")):
        paths[path] = {"get": _op(path.strip("/").replace("/", "_").replace(".", "_"), summary,
                                  {"200": {"description": "OK"},
                                   "503": {"description": "Not ready"}}, open_=True)}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "scorehouse", "version": __version__,
                 "description": "Models: " + ", ".join(f"{n}/{s.public_version}" for n, s in
                                                      models.items())},
        "paths": paths, "components": {"schemas": components},
    }
    if secured:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


#: Where /docs takes Swagger UI's script and style from: this server, never a CDN, so the page
#: works on a network with no way out. The files come from the `swagger-ui-py` package.
DOCS_ASSETS = "/docs/assets"

DOCS_HTML = f"""<!doctype html>
<html><head><title>scorehouse API</title><meta charset="utf-8">
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
</head><body><div id="ui"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#ui"}});</script>
</body></html>
"""


def swagger_ui_files() -> str:
    """The folder of Swagger UI's built files (`swagger-ui-bundle.js`, `swagger-ui.css`), as
    shipped inside the `swagger-ui-py` wheel (found without importing the package, which
    loads Jinja2 and YAML: a Lambda cold start pays every import)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("swagger-ui-py is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "static")
