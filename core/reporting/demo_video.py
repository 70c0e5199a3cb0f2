"""Demo videos of a model's predictions: one frame per sample, in the order the sample ids give, as an MP4.

Frames are written as PNGs while the split is scored (in whatever order the shards hold them), then
encoded in natural order of their sample ids: digits compare as numbers, so Cityscapes frames run
by city, sequence and frame number (aachen_000000_000019) and KITTI's by drive and frame
(2011_09_26_drive_0002_sync_image_0000000005_image_02). ffmpeg comes with the imageio-ffmpeg wheel.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def natural_key(sample_id: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", sample_id) if part]


class DemoVideo:
    """Collects frames into `frames/` beside the video; `finish` encodes them and removes them."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self.frames = path.with_suffix("").with_name(path.stem + "_frames")
        self.frames.mkdir(parents=True, exist_ok=True)
        self.ids: list[str] = []

    def add(self, sample_id: str, frame: np.ndarray) -> None:
        Image.fromarray(_even(frame)).save(self.frames / f"{len(self.ids):07d}.png")
        self.ids.append(sample_id)

    def finish(self) -> list[np.ndarray]:
        """Encode the frames in sample-id order; returns the first few, for TensorBoard."""
        import imageio_ffmpeg

        if not self.ids:
            raise ValueError(f"no frames for {self.path}: the split is empty")
        order = sorted(range(len(self.ids)), key=lambda index: natural_key(self.ids[index]))
        first = np.asarray(Image.open(self.frames / f"{order[0]:07d}.png").convert("RGB"))
        height, width = first.shape[:2]
        writer = imageio_ffmpeg.write_frames(str(self.path), (width, height), fps=self.fps, macro_block_size=2,
                                             codec="libx264", pix_fmt_out="yuv420p")
        writer.send(None)
        shown = []
        for index in order:
            frame = np.asarray(Image.open(self.frames / f"{index:07d}.png").convert("RGB"))
            if frame.shape[:2] != (height, width):
                raise ValueError(f"sample {self.ids[index]}: a frame of {frame.shape[1]}x{frame.shape[0]}, the video's are "
                                 f"{width}x{height}; a video needs one image size")
            writer.send(np.ascontiguousarray(frame))
            if len(shown) < 4:
                shown.append(frame)
        writer.close()
        shutil.rmtree(self.frames)
        return shown


def _even(frame: np.ndarray) -> np.ndarray:
    """Padded to even sides with black: H.264 in yuv420p halves the colour planes."""
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)))
