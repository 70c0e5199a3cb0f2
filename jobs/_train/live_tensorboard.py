"""TensorBoard events from inside an epoch (step-level scalars, augmented inputs), written into the run
directory by a small actor on the driver's node.

Rank 0 may train on another machine than the one holding the run directory, and the epoch's
report (through which everything else reaches tb/) comes only at the epoch's end; rank 0 sends
these here instead, without waiting for an answer. The actor writes with TensorBoard's own event
writer, so its process does not import torch.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import ray
from PIL import Image
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@ray.remote(num_cpus=0)
class LiveTensorBoard:
    def __init__(self, folder: str):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(folder, filename_suffix=".steps")

    def add(self, step: int, scalars: dict[str, float]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._write(step, [Summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()])

    def add_images(self, step: int, tag: str, images: list[np.ndarray]) -> None:
        """HxWx3 uint8 images, as tag_0, tag_1, ..."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = []
        for index, image in enumerate(images):
            encoded = io.BytesIO()
            Image.fromarray(image).save(encoded, format="PNG")
            picture = Summary.Image(height=image.shape[0], width=image.shape[1], colorspace=3, encoded_image_string=encoded.getvalue())
            values.append(Summary.Value(tag=f"{tag}_{index}", image=picture))
        self._write(step, values)

    def _write(self, step: int, values: list) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def start(tensorboard_folder: Path):
    """The actor, on this node (where the run directory is)."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return LiveTensorBoard.options(scheduling_strategy=here).remote(str(tensorboard_folder))


def stop(actor) -> None:
    """Its events flushed and its file closed, then the actor gone."""
    try:
        ray.get(actor.close.remote(), timeout=30)
    except RayError:  # gone with the cluster, or stuck: every event was flushed as it came
        pass
    finally:
        ray.kill(actor)
