"""The training loop of core.engine.trainer in one process, without Ray: stages with their components, checkpoints
whose train state keeps each component under its key, and a run stopped mid-stage that goes on as if it never stopped."""
from pathlib import Path

import pytest
import torch

from core.config.loading import load_config
from core.engine import checkpoint
from core.engine.local import LocalBackend, restore
from core.engine.trainer import COMPONENTS, Trainer
from core.tasks.catalog import build_task
from tests.core.task_batches import manifest_for, random_batch

STAGED = ["train.batch_size=2", "train.log_images=1", "train.step_scalars_every=2", "train.plateau={patience: 0, factor: 0.5}",
          "stages=[{name: warm, epochs: 2, loss_weights: {cross_entropy: 1.0, focal: 0.0}},"
          " {name: all, epochs: 2, freeze: ['encoder.*'], optimizer: {lr: 0.01}, early_stopping: 5}]"]


def _backend(checkpoints: Path | None = None, stop_after: int | None = None) -> LocalBackend:
    """Three fixed batches an epoch, a fourth for validation; stop_after: the process dies after that epoch's report."""
    def train(config, epoch):
        torch.manual_seed(100 + epoch)
        return [random_batch(n=2) for _ in range(3)]

    def val(config):
        torch.manual_seed(7)
        return [random_batch(n=2)]

    backend = LocalBackend(train, val, checkpoints)
    if stop_after is not None:
        report = backend.report

        def dying(record, folder):
            report(record, folder)
            if record["epoch"] == stop_after:
                raise KeyboardInterrupt("stopped")
        backend.report = dying
    return backend


def _run(config, backend, restored_from: Path | None = None):
    torch.manual_seed(0)
    module = build_task(config.task, manifest_for()).build_model()
    restored = restore(restored_from, module) if restored_from else None
    Trainer(config, manifest_for(), backend, "test").run(module, restored)
    return module


def test_stages_run_in_one_process_with_their_components_saved_under_their_keys(tmp_path):
    config = load_config(None, STAGED)
    backend = _backend(tmp_path)
    module = _run(config, backend)
    records = backend.records
    assert [(r["epoch"], r["stage"], r["stage_event"]) for r in records] == [
        (1, "warm", "started"), (2, "warm", "ended (last epoch)"), (3, "all", "started"), (4, "all", "ended (last epoch)")]
    assert records[0]["loss_weight/focal"] == 0.0 and "train/focal" in records[0], "the loss that was off is shown as off"
    assert records[2]["lr"] == 0.01 and len(backend.steps) == 12
    assert [step for step, _ in backend.scalars] == [2, 4, 6, 8, 10, 12], "every 2nd step, counted over the whole run"
    assert set(backend.scalars[0][1]) == {"step/loss", "step/lr", "step/samples_per_s", "step/data_wait_share"}
    state = checkpoint.read(tmp_path / "epoch_0003")["train_state"]
    assert set(COMPONENTS) <= set(state) and state["epoch"] == 2 and state["stage"] == 1
    assert state["early_stopping"]["bad_epochs"] in (0, 1) and state["numerics"] == {"skipped": 0, "overflows": 0}
    frozen = [p for name, p in module.named_parameters() if name.startswith("encoder.")]
    assert frozen and not any(p.requires_grad for p in frozen)


@pytest.mark.parametrize("stopped_after", [1, 3], ids=["inside the first stage", "inside the second stage"])
def test_a_run_stopped_after_an_epoch_goes_on_from_its_checkpoint_as_if_never_stopped(tmp_path, stopped_after):
    config = load_config(None, STAGED)
    whole = _backend()
    uninterrupted = _run(config, whole)
    with pytest.raises(KeyboardInterrupt):
        _run(config, _backend(tmp_path, stop_after=stopped_after))
    rest = _backend()
    resumed = _run(config, rest, restored_from=tmp_path / f"epoch_{stopped_after:04d}")
    assert [r["epoch"] for r in rest.records] == list(range(stopped_after + 1, 5))
    assert [step for step, _ in rest.scalars] == [step for step, _ in whole.scalars if step > 3 * stopped_after], \
        "the step count goes on from the checkpoint"
    for before, after in zip(whole.records[stopped_after:], rest.records):
        assert after["train/loss"] == pytest.approx(before["train/loss"], rel=1e-5) and after["lr"] == before["lr"]
    expected = uninterrupted.state_dict()
    assert all(torch.allclose(resumed.state_dict()[k].float(), expected[k].float(), atol=1e-5) for k in expected)
