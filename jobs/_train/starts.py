"""Every start of a run's worker group, kept in its Ray Train storage, so that summary.json counts every restart.

Ray Train restarts the worker group after a failure from the latest registered checkpoint, or from
scratch when none was registered yet. A count kept in the checkpoint sees only the first kind;
rank 0 therefore drops a small file per start beside the checkpoints (local or S3, wherever the
run's storage is), naming the session (resumes) and what it started from, and the driver reads them.
"""
from __future__ import annotations

import json
import os
import posixpath
import time
from typing import Any

from jobs._train.resume import CheckpointStorage

STARTS = "worker_group_starts"
SCRATCH = "scratch"


def record_start(storage: Any, resumes: int, started_from: str, world_size: int, at: dict[str, int]) -> None:
    """storage: the worker's Ray Train StorageContext; started_from: "checkpoint epoch N", "init_checkpoint" or SCRATCH;
    at: where the run goes on from ({"epoch": epochs finished, "epoch_samples": of the next one, "step": optimizer
    steps}). Rank 0 only."""
    folder = posixpath.join(str(storage.experiment_fs_path), STARTS)
    storage.storage_filesystem.create_dir(folder)
    entry = {"time": time.time(), "resumes": resumes, "started_from": started_from, "rank0_pid": os.getpid(),
             "world_size": world_size, **at}
    path = posixpath.join(folder, f"{time.time_ns()}.json")
    # Written aside and moved into place: a reader polling the folder (a test, a watcher) never sees a half-written start.
    with storage.storage_filesystem.open_output_stream(f"{path}.partial") as handle:
        handle.write(json.dumps(entry).encode())
    storage.storage_filesystem.move(f"{path}.partial", path)


def restarts(storage: CheckpointStorage) -> dict[str, Any]:
    """{"restarts": every start after the first of its session, "restarts_from_scratch": those that found no checkpoint,
    "resizes": each start at another world size than the one before (time, from, to, and where it went on from)}."""
    folder = posixpath.join(storage.root, STARTS)
    try:
        paths = [p for p in storage.fs.ls(folder, detail=False) if p.endswith(".json")]  # not one still being written
    except FileNotFoundError:
        return {"restarts": 0, "restarts_from_scratch": 0, "resizes": []}
    paths.sort(key=lambda p: int(posixpath.basename(p).split(".")[0]))
    starts = [json.loads(storage.fs.cat_file(path)) for path in paths]
    sessions = {start["resumes"] for start in starts}
    later = [start for index, start in enumerate(starts) if any(s["resumes"] == start["resumes"] for s in starts[:index])]
    resizes = [{"time": after["time"], "from": before["world_size"], "to": after["world_size"], "epoch": after["epoch"],
                "epoch_samples": after["epoch_samples"], "step": after["step"]}
               for before, after in zip(starts, starts[1:]) if before.get("world_size") != after.get("world_size")]
    return {"restarts": len(starts) - len(sessions), "restarts_from_scratch": sum(s["started_from"] == SCRATCH for s in later),
            "resizes": resizes}
