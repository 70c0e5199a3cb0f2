"""Train-time augmentation of decoded samples, one geometry for every image of a sample.

Each sample's random draws come from (seed, epoch, sample key) alone, so a sample is augmented the
same way in the same epoch whichever worker reads it, in whatever order, in a resumed run as in
an uninterrupted one. RGB is resampled bilinearly; labels, depth and sparse depth take the
nearest pixel (a depth is a measurement, not something to blend across an edge). Where a crop
reaches past a downscaled image, labels are the ignore label and depth is 0, "no measurement".
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core.config.schema import AugmentConfig
from core.augmentation.sample_key import SAMPLE_KEY


def augment_batch(batch: dict[str, np.ndarray], config: AugmentConfig, seed: int, epoch: int,
                  ignore_index: int) -> dict[str, torch.Tensor]:
    images = {name: values for name, values in batch.items() if name != SAMPLE_KEY}
    native = tuple(next(iter(images.values())).shape[1:3])
    size = config.size_at(epoch, native)
    keys = batch[SAMPLE_KEY]
    samples = [augment_sample({name: values[i] for name, values in images.items()},
                              np.random.default_rng([seed, epoch, int(keys[i]) & 0x7FFFFFFFFFFFFFFF]), config, size, ignore_index)
               for i in range(len(keys))]
    return {name: torch.from_numpy(np.stack([s[name] for s in samples])) for name in images}


def augment_sample(sample: dict[str, np.ndarray], rng: np.random.Generator, config: AugmentConfig, size: tuple[int, int],
                   ignore_index: int) -> dict[str, np.ndarray]:
    flip = rng.random() < config.hflip
    factor = rng.uniform(*config.scale) if config.scale else None
    jitter = rng.uniform(1 - config.color_jitter, 1 + config.color_jitter, 3) if config.color_jitter else None
    height, width = sample[next(iter(sample))].shape[:2]
    scaled = (max(1, round(height * factor)), max(1, round(width * factor))) if factor else size
    top = int(rng.integers(0, abs(scaled[0] - size[0]) + 1))
    left = int(rng.integers(0, abs(scaled[1] - size[1]) + 1))
    out = {}
    for name, image in sample.items():
        tensor = torch.from_numpy(np.ascontiguousarray(image[:, ::-1] if flip else image))
        resized = _resize(tensor, scaled, bilinear=name == "rgb")
        filler = ignore_index if name == "labels" else 0
        out[name] = _window(resized, size, top, left, scaled, filler).numpy()
    if jitter is not None and "rgb" in out:
        out["rgb"] = _jitter(out["rgb"], jitter)
    return out


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
