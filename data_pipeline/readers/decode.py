"""A block's columns decoded as the task's column kinds say, and checked: no Ray here, so the local reader
(evaluation, the ingest floor) shares it with the Ray Data reader.

Each row keeps its shard path and sample id through decoding, so that a bad sample is named exactly
(data_pipeline.format.validate); the decoded block carries a SAMPLE_KEY per row instead.
"""
from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pyarrow as pa

from core.augmentation.sample_key import SAMPLE_KEY
from core.tasks.columns import Column, Kind
from data_pipeline.format import codec
from data_pipeline.format.validate import SampleRules

PATH = "path"  # the column naming each row's shard, as read_parquet's include_paths does
_IDENTITY = (PATH, "sample_id")
SAMPLE_KEY_BYTES = np.dtype(np.int64).itemsize


def decoded_row_bytes(columns: list[Column], image_size: tuple[int, int]) -> int:
    return SAMPLE_KEY_BYTES + sum(math.prod(column.decoded_shape(image_size)) * np.dtype(column.dtype).itemsize
                                  for column in columns)


def decode_columns(batch: dict[str, Any], columns: list[Column], rules: SampleRules | None = None) -> dict[str, np.ndarray]:
    """A block's columns (Arrow arrays, or NumPy arrays of a value per row) decoded as their kinds say; with rules,
    bad samples raise or are left out (see SampleRules.reject)."""
    by_name = {column.name: column for column in columns}
    kinds = {column.name: column.kind for column in columns}
    batch = {name: values if name in by_name and by_name[name].spatial else _per_row(values) for name, values in batch.items()}
    ids = batch.get("sample_id")
    values = {name: column for name, column in batch.items() if name not in _IDENTITY}
    at_once = {name: _column_at_once(by_name[name], column) for name, column in values.items()}
    if all(column is not None for column in at_once.values()) and (rules is None or rules.batch_passes(at_once, kinds)):
        decoded, kept_ids = at_once, ids
    else:
        decoded, kept_ids = _decode_rows(batch, by_name, {name: _per_row(column) for name, column in values.items()}, at_once,
                                         rules)
    if rules is not None and rules.label_lookup is not None:
        decoded.update({name: rules.label_lookup[values] for name, values in decoded.items() if kinds.get(name) is Kind.LABEL_MAP})
    if ids is not None:  # strings cannot become tensors; augmentation seeds each sample by this number
        decoded[SAMPLE_KEY] = np.array([zlib.crc32(str(sample_id).encode()) for sample_id in kept_ids], dtype=np.int64)
    return decoded


def _per_row(values: Any) -> np.ndarray:
    """A column as a NumPy array of a value per row: Arrow's binary values become bytes objects."""
    return values.to_numpy(zero_copy_only=False) if isinstance(values, (pa.Array, pa.ChunkedArray)) else values


def _decode_one(column: Column, value: Any) -> np.ndarray:
    if column.kind is Kind.DEPTH_MAP:
        return codec.decode_depth(value)
    if column.spatial:
        return codec.decode_image(value)
    return np.asarray(value, dtype=np.float32).reshape(column.decoded_shape(()))


def _column_at_once(column: Column, values: np.ndarray) -> np.ndarray | None:
    """The column decoded and stacked in one go, or None where a row needs decoding alone (see codec.decode_column)."""
    if column.spatial:
        return codec.decode_column(values, depth=column.kind is Kind.DEPTH_MAP)
    try:
        return np.stack([_decode_one(column, value) for value in values])
    except (TypeError, ValueError):  # a null or a malformed row: the row-by-row decode names it
        return None


def _decode_rows(batch: dict[str, np.ndarray], columns: dict[str, Column], values: dict[str, np.ndarray],
                 at_once: dict[str, np.ndarray | None], rules: SampleRules | None) -> tuple[dict[str, np.ndarray], list]:
    """Sample by sample, to name (or leave out) each bad one: the decoded columns, and the ids of the rows kept."""
    paths, ids = batch.get(PATH), batch.get("sample_id")
    kinds = {name: column.kind for name, column in columns.items()}
    kept: dict[str, list[np.ndarray]] = {name: [] for name in values}
    kept_ids = []
    for index in range(len(next(iter(values.values())))):
        try:
            sample = {name: _decode_one(columns[name], rows[index]) if at_once[name] is None else at_once[name][index]
                      for name, rows in values.items()}
        except Exception as err:  # PIL names a broken PNG in several ways
            sample, problem = None, f"a column does not decode ({type(err).__name__}: {err})"
        else:
            problem = rules.problem(sample, kinds) if rules else None
        if problem is None and sample is not None:
            for name, decoded in sample.items():
                kept[name].append(decoded)
            if ids is not None:
                kept_ids.append(ids[index])
        elif rules is None:
            raise ValueError(problem)
        else:
            rules.reject(str(paths[index]), str(ids[index]), problem)
    return {name: np.stack(rows) if rows else _empty(columns[name], rules) for name, rows in kept.items()}, kept_ids


def _empty(column: Column, rules: SampleRules) -> np.ndarray:
    """A column with no rows (every sample of the batch was skipped), shaped like a full one."""
    return np.empty((0, *column.decoded_shape(rules.image_size)), dtype=column.dtype)
