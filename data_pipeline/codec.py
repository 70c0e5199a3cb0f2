"""Image columns as PNG bytes: RGB and labels as 8-bit PNG, depth as 16-bit PNG in the KITTI
convention (metres x 256, 0 = no measurement)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

DEPTH_SCALE = 256.0
MAX_DEPTH_M = np.iinfo(np.uint16).max / DEPTH_SCALE


def encode_png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def encode_depth(metres: np.ndarray) -> bytes:
    if not np.isfinite(metres).all() or (metres < 0).any() or metres.max(initial=0) > MAX_DEPTH_M:
        raise ValueError(f"depth must be finite and within [0, {MAX_DEPTH_M:.1f}] m for 16-bit PNG")
    return encode_png(np.round(metres * DEPTH_SCALE).astype(np.uint16))


def decode_depth(data: bytes) -> np.ndarray:
    return decode_png(data).astype(np.float32) / DEPTH_SCALE
