"""The input contract inferred from training data, and the one set of rules every channel uses."""

from .coerce import CoercionError, coerce_value
from .columns import Column, Schema
from .infer import infer_schema
from .policy import (
    ABSENT_COLUMN,
    ColumnCheck,
    ColumnPolicy,
    ColumnsError,
    UnknownColumn,
    check_input,
    check_names,
)
from .types import CategoryType, ColumnType
from .validate import Reject, RejectTally, Validated, validate_batch, validate_row

__all__ = [
    "Column", "ColumnType", "CategoryType", "Schema", "Reject", "RejectTally", "Validated", "CoercionError",
    "coerce_value", "infer_schema", "validate_batch", "validate_row",
    "ABSENT_COLUMN", "ColumnCheck", "ColumnPolicy", "ColumnsError", "UnknownColumn",
    "check_input", "check_names",
]
