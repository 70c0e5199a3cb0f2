"""Checkpoint folders: the training state under fixed keys, written so that a half-written one is never read.

A folder holds state.pt with {"model", "optimizer", "train_state"} and, optionally, previews/
with PNG images of the predictions at that point (and meshes, as .npz of verts, faces, colors). state.pt is written under a temporary name and
renamed, so a folder without state.pt is incomplete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

STATE_FILE = "state.pt"
PREVIEWS = "previews"
_NAMED = 8  # a shape mismatch names this many tensors, and counts the rest


def save(folder: Path, model: nn.Module | dict[str, torch.Tensor], optimizer: torch.optim.Optimizer | None, train_state: dict[str, Any],
         previews: list[np.ndarray] = (), meshes: list[dict[str, np.ndarray]] = ()) -> None:
    """model: a module, or its state already gathered; optimizer None: its state is kept elsewhere (DeepSpeed shards)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(previews):
        (folder / PREVIEWS).mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / PREVIEWS / f"{index:02d}.png")
    for index, mesh in enumerate(meshes):
        (folder / PREVIEWS).mkdir(exist_ok=True)
        np.savez_compressed(folder / PREVIEWS / f"mesh_{index:02d}.npz", **mesh)
    partial = folder / f".{STATE_FILE}.partial"
    weights = model if isinstance(model, dict) else model.state_dict()
    torch.save({"model": weights, "optimizer": optimizer.state_dict() if optimizer else {}, "train_state": train_state}, partial)
    os.replace(partial, folder / STATE_FILE)


def read(folder: Path) -> dict[str, Any]:
    """{"model", "optimizer", "train_state"}, on the CPU."""
    path = folder / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {STATE_FILE}: not a complete checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)


def load(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    state = read(folder)
    load_weights(model, state["model"], folder)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state["train_state"]


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: Path | str) -> None:
    """load_state_dict, refusing weights of a model of another shape with the tensors that differ named."""
    own = model.state_dict()
    problems = [f"{name}: {list(weights[name].shape)} in the checkpoint, {list(tensor.shape)} in this model"
                for name, tensor in own.items() if name in weights and weights[name].shape != tensor.shape]
    missing, unexpected = [n for n in own if n not in weights], [n for n in weights if n not in own]
    problems += [f"{name}: missing from the checkpoint" for name in missing]
    problems += [f"{name}: in the checkpoint, not in this model" for name in unexpected]
    if problems:
        shown = "; ".join(problems[:_NAMED]) + (f"; and {len(problems) - _NAMED} more" if len(problems) > _NAMED else "")
        raise ValueError(f"checkpoint {source} was saved from a model of another shape than the config builds "
                         f"({len(problems)} tensor(s) differ): {shown}")
    model.load_state_dict(weights)


def saved_train_state(folder: Path) -> dict[str, Any]:
    """A checkpoint's train_state, read without loading its tensors into memory."""
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True, mmap=True)["train_state"]


def saved_epoch(folder: Path) -> int:
    """The last finished epoch (0-based) in a checkpoint."""
    return saved_train_state(folder)["epoch"]


def load_previews(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((folder / PREVIEWS).glob("*.png"))]


def load_meshes(folder: Path) -> list[dict[str, np.ndarray]]:
    return [dict(np.load(p)) for p in sorted((folder / PREVIEWS).glob("mesh_*.npz"))]


def locate(target: Path) -> tuple[Path, str]:
    """(run directory, checkpoint folder or URI) of a run directory (the checkpoint its summary.json names, which may
    be on S3) or of a checkpoint folder inside one; FileNotFoundError saying what target is not."""
    if (target / STATE_FILE).is_file():
        run_dir = next((p for p in target.parents if (p / "config.yaml").is_file()), None)
        if run_dir is None:
            raise FileNotFoundError(f"{target} is a checkpoint outside any run directory (no config.yaml above it)")
        return run_dir, str(target)
    summary = target / "summary.json"
    if not summary.is_file():
        raise FileNotFoundError(f"{target} is neither a run directory (with summary.json) nor a checkpoint folder (with "
                                f"{STATE_FILE})")
    saved = json.loads(summary.read_text()).get("checkpoint")
    if not saved:
        raise FileNotFoundError(f"{summary} names no checkpoint: the run saved none")
    return target, saved
