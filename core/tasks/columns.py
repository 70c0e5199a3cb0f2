"""The data columns a task reads, each with its kind: what the readers decode it to, how augmentation moves
it, and what an example of it looks like (jobs.summary runs the model on one).

Spatial kinds are per-pixel maps sharing the sample's height and width; the others are one value per
sample whose shape the column states.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from core.augmentation.sample_key import SAMPLE_KEY


class Kind(str, Enum):
    IMAGE = "image"  # (H, W, C) uint8, resampled bilinearly
    LABEL_MAP = "label_map"  # (H, W) uint8 class ids: the nearest pixel, the ignore label where nothing was seen
    DEPTH_MAP = "depth_map"  # (H, W) float32 metres: the nearest pixel, 0 ("no measurement") where nothing was seen
    VECTOR = "vector"  # (N,) float32 per sample, untouched by augmentation
    MATRIX = "matrix"  # (R, C) float32 per sample, untouched by augmentation
    CAMERA = "camera"  # (3, 3) float32 pinhole intrinsics in pixels: flips, rescales and crops move it with the image


SPATIAL = (Kind.IMAGE, Kind.LABEL_MAP, Kind.DEPTH_MAP)


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    shape: tuple[int, ...] = ()  # spatial kinds: after (H, W), e.g. (3,) for RGB; others: the whole per-sample shape

    def __post_init__(self):
        if self.kind is Kind.CAMERA and self.shape not in ((), (3, 3)):
            raise ValueError(f"column {self.name!r}: a camera is a 3x3 matrix, not {self.shape}")
        if self.kind in (Kind.VECTOR, Kind.MATRIX) and len(self.shape) != (1 if self.kind is Kind.VECTOR else 2):
            raise ValueError(f"column {self.name!r}: a {self.kind.value} needs a shape of {1 if self.kind is Kind.VECTOR else 2} "
                             f"dimension(s), not {self.shape}")

    @property
    def spatial(self) -> bool:
        return self.kind in SPATIAL

    def decoded_shape(self, image_size: tuple[int, int]) -> tuple[int, ...]:
        if self.kind is Kind.CAMERA:
            return (3, 3)
        return (*image_size, *self.shape) if self.spatial else self.shape

    @property
    def dtype(self) -> type:
        return np.uint8 if self.kind in (Kind.IMAGE, Kind.LABEL_MAP) else np.float32


def example_batch(columns: list[Column], image_size: tuple[int, int], num_classes: int, rows: int = 1,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Random rows of these columns as the readers decode them: a model summary's input, a test's batch."""
    rng = np.random.default_rng(seed)
    height, width = image_size
    batch = {}
    for column in columns:
        shape = (rows, *column.decoded_shape(image_size))
        if column.kind is Kind.IMAGE:
            batch[column.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif column.kind is Kind.LABEL_MAP:
            batch[column.name] = rng.integers(0, max(num_classes, 1), shape, dtype=np.uint8)
        elif column.kind is Kind.DEPTH_MAP:
            batch[column.name] = (rng.uniform(1, 80, shape) * (rng.uniform(size=shape) < 0.2)).astype(np.float32)
        elif column.kind is Kind.CAMERA:  # a 60-degree field of view, centred
            focal = width / (2 * np.tan(np.radians(30)))
            camera = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]], np.float32)
            batch[column.name] = np.repeat(camera[None], rows, axis=0)
        else:
            batch[column.name] = rng.standard_normal(shape).astype(np.float32)
    batch[SAMPLE_KEY] = np.arange(seed, seed + rows, dtype=np.int64)  # as the readers give each sample's key
    return batch


def column_names(columns: list[Column]) -> list[str]:
    return [column.name for column in columns]
