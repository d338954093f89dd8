"""The record schema lives in loft/core/schema.py; this name stays only for loft/tables, which
imports it as `loft.schema` (the tables' owner moves that import, then this file goes)."""
from loft.core.schema import FIELDS, SCHEMA, STATUSES, RecordError, check, flag, key_of, normalize, read  # noqa: F401
