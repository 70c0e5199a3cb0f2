"""Train-time augmentation of decoded samples: one geometry for every column of a sample, each moved as its kind says.

Each sample's random draws come from (seed, epoch, sample key) alone, so a sample is augmented the
same way in the same epoch whichever worker reads it, in whatever order, in a resumed run as in
an uninterrupted one. Images are resampled bilinearly; label and depth maps take the nearest pixel
(a depth is a measurement, not something to blend across an edge). Where a crop reaches past a
downscaled image, label maps hold the ignore label and depth maps 0, "no measurement". A camera's
intrinsics follow the pixels they project to; vectors and matrices stay as they are. Colour jitter
touches images only, and weather (core.augmentation.weather) RGB images only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.augmentation import weather
from core.augmentation.sample_key import SAMPLE_KEY
from core.config.sections import AugmentConfig
from core.tasks.columns import Column, Kind


@dataclass(frozen=True)
class Geometry:
    """Where a sample's pixels go: flipped, rescaled to `scaled`, then a `size` window taken at (top, left) of the
    rescaled image, or the rescaled image placed at (top, left) of a `size` canvas where it is the smaller."""

    flip: bool
    native: tuple[int, int]
    scaled: tuple[int, int]
    size: tuple[int, int]
    top: int
    left: int


def augment_batch(batch: dict[str, np.ndarray], columns: list[Column], config: AugmentConfig, seed: int, epoch: int,
                  ignore_index: int) -> dict[str, torch.Tensor]:
    kinds = {column.name: column.kind for column in columns}
    maps = [name for name in batch if name in kinds and kinds[name] in (Kind.IMAGE, Kind.LABEL_MAP, Kind.DEPTH_MAP)]
    native = tuple(batch[maps[0]].shape[1:3])
    size = config.size_at(epoch, native)
    keys = batch[SAMPLE_KEY]
    names = [name for name in batch if name != SAMPLE_KEY]
    samples = [augment_sample({name: batch[name][i] for name in names}, kinds,
                              np.random.default_rng([seed, epoch, int(keys[i]) & 0x7FFFFFFFFFFFFFFF]), config, size, ignore_index)
               for i in range(len(keys))]
    augmented = {name: torch.from_numpy(np.stack([s[name] for s in samples])) for name in names}
    return {**augmented, SAMPLE_KEY: torch.from_numpy(np.asarray(keys, dtype=np.int64))}  # the epoch's tally counts samples by it


def augment_sample(sample: dict[str, np.ndarray], kinds: dict[str, Kind], rng: np.random.Generator, config: AugmentConfig,
                   size: tuple[int, int], ignore_index: int) -> dict[str, np.ndarray]:
    flip = rng.random() < config.hflip
    factor = rng.uniform(*config.scale) if config.scale else None
    jitter = rng.uniform(1 - config.color_jitter, 1 + config.color_jitter, 3) if config.color_jitter else None
    native = next(value.shape[:2] for name, value in sample.items() if kinds[name] in (Kind.IMAGE, Kind.LABEL_MAP, Kind.DEPTH_MAP))
    scaled = (max(1, round(native[0] * factor)), max(1, round(native[1] * factor))) if factor else size
    top = int(rng.integers(0, abs(scaled[0] - size[0]) + 1))
    left = int(rng.integers(0, abs(scaled[1] - size[1]) + 1))
    weather_seed = int(rng.integers(2**31)) if config.weather else None  # drawn last: the draws before stay as they were
    geometry = Geometry(flip, tuple(native), scaled, size, top, left)
    out = {}
    for name, value in sample.items():
        kind = kinds[name]
        if kind is Kind.CAMERA:
            out[name] = move_camera(value, geometry)
        elif kind in (Kind.IMAGE, Kind.LABEL_MAP, Kind.DEPTH_MAP):
            filler = ignore_index if kind is Kind.LABEL_MAP else 0
            out[name] = _move_map(value, geometry, bilinear=kind is Kind.IMAGE, filler=filler)
            if kind is Kind.IMAGE and jitter is not None:
                out[name] = _jitter(out[name], jitter)
            if kind is Kind.IMAGE and weather_seed is not None and out[name].shape[-1] == 3:
                out[name] = weather.apply(out[name], config.weather, weather_seed)
        else:
            out[name] = value
    return out


def move_camera(intrinsics: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The 3x3 intrinsics (pixels, a pixel's centre at +0.5) of the augmented image: a flip mirrors u -> W - u (the
    focal length turns negative, as the mirrored scene needs), a rescale scales each axis, a window shifts the centre."""
    camera = np.array(intrinsics, dtype=np.float32).reshape(3, 3).copy()
    height, width = geometry.native
    if geometry.flip:
        camera[0, 0], camera[0, 2] = -camera[0, 0], width - camera[0, 2]
    scale_y, scale_x = geometry.scaled[0] / height, geometry.scaled[1] / width
    camera[0] *= scale_x
    camera[1] *= scale_y
    shift_x = -geometry.left if geometry.scaled[1] >= geometry.size[1] else geometry.left
    shift_y = -geometry.top if geometry.scaled[0] >= geometry.size[0] else geometry.top
    camera[0, 2] += shift_x
    camera[1, 2] += shift_y
    camera[2] = (0.0, 0.0, 1.0)
    return camera.reshape(np.shape(intrinsics))


def _move_map(image: np.ndarray, geometry: Geometry, bilinear: bool, filler) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(image[:, ::-1] if geometry.flip else image))
    resized = _resize(tensor, geometry.scaled, bilinear)
    return _window(resized, geometry.size, geometry.top, geometry.left, geometry.scaled, filler).numpy()


def _resize(image: torch.Tensor, size: tuple[int, int], bilinear: bool) -> torch.Tensor:
    if tuple(image.shape[:2]) == size:
        return image
    channels_first = image.reshape(*image.shape[:2], -1).permute(2, 0, 1)[None].float()
    mode = {"mode": "bilinear", "align_corners": False, "antialias": True} if bilinear else {"mode": "nearest"}
    resized = F.interpolate(channels_first, size=size, **mode)[0].permute(1, 2, 0).reshape(*size, *image.shape[2:])
    return resized.round().clamp(0, 255).to(image.dtype) if image.dtype == torch.uint8 else resized.to(image.dtype)


def _window(image: torch.Tensor, size: tuple[int, int], top: int, left: int, scaled: tuple[int, int], filler) -> torch.Tensor:
    """Crop a larger image at (top, left), or place a smaller one at (top, left) on a filled canvas."""
    out = torch.full((*size, *image.shape[2:]), filler, dtype=image.dtype)
    src_top, dst_top = (top, 0) if scaled[0] >= size[0] else (0, top)
    src_left, dst_left = (left, 0) if scaled[1] >= size[1] else (0, left)
    rows, cols = min(size[0], scaled[0]), min(size[1], scaled[1])
    out[dst_top:dst_top + rows, dst_left:dst_left + cols] = image[src_top:src_top + rows, src_left:src_left + cols]
    return out


def _jitter(rgb: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Brightness, contrast and saturation, each scaled by its factor, as torchvision's ColorJitter orders them."""
    image = rgb.astype(np.float32)
    image = image * factors[0]
    image = (image - image.mean()) * factors[1] + image.mean()
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    image = (image - grey[..., None]) * factors[2] + grey[..., None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
