"""Weather and hard-condition augmentation of RGB images (rain, snow, fog, sun flare, motion blur) through albumentations.

RGB only, geometry untouched: label and depth maps stay aligned without moving them. Each effect
is applied with its configured probability; every draw comes from a seed the sample's generator
gives (core.augmentation.augment), so a sample looks the same in the same epoch whatever reads it.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from core.config.sections import WeatherConfig


@lru_cache(maxsize=8)
def _pipeline(config: WeatherConfig):
    """One albumentations Compose per configuration: built once, reseeded per sample."""
    # Its import asks PyPI for a newer version, over the network, from every process that augments.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    effects = [A.RandomRain(p=config.rain), A.RandomSnow(p=config.snow), A.RandomFog(p=config.fog),
               A.RandomSunFlare(src_radius=config.sun_flare_radius, p=config.sun_flare), A.MotionBlur(p=config.motion_blur)]
    return A.Compose([effect for effect in effects if effect.p > 0])


def apply(rgb: np.ndarray, config: WeatherConfig, seed: int) -> np.ndarray:
    """rgb: HxWx3 uint8; the same seed gives the same result."""
    pipeline = _pipeline(config)
    pipeline.set_random_seed(seed)
    return pipeline(image=np.ascontiguousarray(rgb))["image"]
