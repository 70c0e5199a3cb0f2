"""Copies of the best K checkpoints by the monitored metric, beside Ray Train's own (best/ in the run's storage).

Ray Train keeps the best N by one reported figure, and the latest; ranked by epoch that is the last
N. Keeping the last N and the best K at once it cannot do (it refuses to restore a run whose list
names a folder pruned behind its back), so the best K are copied out of its folders as they come:
best/epoch_NNNN/ holds a whole checkpoint, best/index.json the epochs, figures and URIs, best first.
"""
from __future__ import annotations

import json
import math
import posixpath
from typing import Any

from jobs._train.resume import CheckpointStorage

INDEX = "index.json"


class BestCheckpoints:
    def __init__(self, storage: CheckpointStorage, keep: int, monitor: str, mode: str):
        self.storage, self.keep, self.monitor, self.mode = storage, keep, monitor, mode
        self.root = posixpath.join(posixpath.dirname(storage.root), "best")
        self.uri = posixpath.join(posixpath.dirname(storage.uri), "best")

    def offer(self, record: dict[str, Any], checkpoint_path: str) -> None:
        """Copy this epoch's checkpoint into best/ if its figure is among the best K so far."""
        value = record.get(self.monitor)
        if not isinstance(value, float) or not math.isfinite(value):
            return
        kept = [entry for entry in self.index() if entry["epoch"] != record["epoch"]]  # a resumed run trains an epoch again
        ranked = sorted([*kept, {"epoch": record["epoch"], self.monitor: value}], key=self._rank)[: self.keep]
        if all(entry["epoch"] != record["epoch"] for entry in ranked):
            return
        fs = self.storage.fs
        folder = posixpath.join(self.root, f"epoch_{record['epoch']:04d}")
        for source in fs.find(checkpoint_path):
            target = posixpath.join(folder, posixpath.relpath(source, checkpoint_path))
            fs.makedirs(posixpath.dirname(target), exist_ok=True)
            fs.copy(source, target)
        for dropped in {e["epoch"] for e in kept} - {e["epoch"] for e in ranked}:
            fs.rm(posixpath.join(self.root, f"epoch_{dropped:04d}"), recursive=True)
        for entry in ranked:
            entry["checkpoint"] = posixpath.join(self.uri, f"epoch_{entry['epoch']:04d}")
        fs.pipe_file(posixpath.join(self.root, INDEX), json.dumps(ranked, indent=2).encode())

    def index(self) -> list[dict[str, Any]]:
        try:
            return json.loads(self.storage.fs.cat_file(posixpath.join(self.root, INDEX)))
        except FileNotFoundError:
            return []

    def _rank(self, entry: dict[str, Any]) -> float:
        return -entry[self.monitor] if self.mode == "max" else entry[self.monitor]
