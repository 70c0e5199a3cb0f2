"""Reconstructed surfaces written as Wavefront .obj files named by sample id (jobs.evaluate --export), for any mesh viewer.

A sample whose reconstruction is empty (no surface in its grid) is written as an .obj without
faces, so that every sample of the split has its file and an empty one is seen as such.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pytorch3d.io import save_obj


class MeshExport:
    """Writes what the task's `exported_meshes(outputs)` gives: (verts, faces) per sample."""

    def __init__(self, folder: Path, manifest: dict[str, Any], task: Any, task_name: str):
        self.folder, self.task, self.written = folder, task, 0
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, batch: dict[str, Any], outputs: Any) -> None:
        for sample_id, (verts, faces) in zip(batch["sample_id"], self.task.exported_meshes(outputs)):
            save_obj(self.folder / f"{sample_id}.obj", verts.float(), faces.long())
            self.written += 1
