"""Spark schemas derived from the core's column declarations (never written by hand)."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import types as T

from xai_kedro.core.common.columns import Column

_SPARK_TYPES = {
    "string": T.StringType,
    "int": T.IntegerType,
    "double": T.DoubleType,
    "bool": T.BooleanType,
    "binary": T.BinaryType,
}


def spark_type(column: Column) -> T.DataType:
    if column.dtype == "float_array":
        return T.ArrayType(T.FloatType(), False)
    return _SPARK_TYPES[column.dtype]()


def struct_of(columns: Sequence[Column]) -> T.StructType:
    return T.StructType([T.StructField(c.name, spark_type(c), c.nullable) for c in columns])
