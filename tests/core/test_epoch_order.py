"""The epoch order behind mid-epoch resumes: drawn from (seed, epoch) alone, shared out whatever the world size, and
counted by a digest that sees a sample trained twice."""
from collections import Counter

import numpy as np
import pytest
import torch

from core.config.sections import CheckpointEvery
from core.engine.epoch_order import Batching, EpochShare, epoch_order
from core.engine.epoch_tally import EpochTally, sample_digest
from core.engine.mid_epoch import MidEpochSchedule, check_same_split, split_key

SHARDS = [8, 8, 5, 9, 3]  # 33 rows: no world size divides the epoch evenly


def _trained(order: np.ndarray, shards: list[tuple[int, int, int]]) -> list[int]:
    """The rows an epoch trains when it runs (start batches of world_size, batch) pieces, each piece `batches`
    global batches long (None: to the epoch's end), every worker's part of every batch."""
    trained, position = [], 0
    for world_size, batch, batches in shards:
        share = EpochShare.plan(len(order), position, Batching.at(batch, 1, world_size, world_size))
        kept = EpochShare(share.start, share.sizes[:batches], world_size)
        for rank in range(world_size):
            rows, sizes = kept.worker_rows(order, rank)
            assert all(size > 0 for size in sizes), "every worker has a part of every batch"
            trained += rows.tolist()
        position = kept.position_after(len(kept.sizes))
    return trained


def test_the_order_is_a_permutation_drawn_from_seed_and_epoch_alone():
    order = epoch_order(SHARDS, seed=3, epoch=1, window_rows=10)
    assert sorted(order.tolist()) == list(range(sum(SHARDS)))
    assert np.array_equal(order, epoch_order(SHARDS, seed=3, epoch=1, window_rows=10))
    assert not np.array_equal(order, epoch_order(SHARDS, seed=3, epoch=2, window_rows=10))
    assert not np.array_equal(order, epoch_order(SHARDS, seed=4, epoch=1, window_rows=10))


def test_rows_are_shuffled_inside_windows_of_whole_shards():
    order = epoch_order(SHARDS, seed=0, epoch=0, window_rows=1).tolist()
    starts = np.cumsum([0, *SHARDS])
    shard_of = [int(np.searchsorted(starts, row, side="right")) - 1 for row in order]
    runs = [shard for index, shard in enumerate(shard_of) if index == 0 or shard != shard_of[index - 1]]
    assert sorted(runs) == list(range(len(SHARDS))), "with windows of one shard each shard's rows come together"


@pytest.mark.parametrize("pieces", [
    [(2, 4, 2), (1, 4, None)],  # 2 workers stopped after 2 batches, 1 goes on
    [(1, 4, 3), (2, 4, None)],  # 1 -> 2
    [(2, 3, 1), (3, 2, 2), (1, 5, None)],  # two resizes, other batch sizes
])
def test_an_interrupted_epoch_trains_each_sample_once_whatever_the_world_size_after(pieces):
    order = epoch_order(SHARDS, seed=0, epoch=5, window_rows=16)
    interrupted = _trained(order, pieces)
    uninterrupted = _trained(order, [(pieces[0][0], pieces[0][1], None)])
    assert Counter(interrupted) == Counter(uninterrupted) == Counter(range(sum(SHARDS)))


def test_a_last_batch_smaller_than_the_world_is_trained_with_the_one_before():
    share = EpochShare.plan(rows=25, start=0, batching=Batching.at(4, 1, 3, 3))
    assert share.sizes.tolist() == [12, 13]
    assert [share.worker_rows(np.arange(25), rank)[1] for rank in range(3)] == [[4, 5], [4, 4], [4, 4]]


@pytest.mark.parametrize("world_size, accumulation, batch_size", [(1, 4, 6), (2, 2, 6), (3, 2, 4), (4, 1, 6)])
def test_the_global_batch_stays_the_configured_one_at_any_world_size(world_size, accumulation, batch_size):
    batching = Batching.at(batch_size=6, grad_accumulation=1, configured_workers=4, world_size=world_size)  # 24 a step
    assert (batching.global_batch, batching.accumulation, batching.batch_size) == (24, accumulation, batch_size)
    share = EpochShare.plan(rows=100, start=0, batching=batching)
    full_steps = share.sizes[:4 * accumulation].reshape(4, accumulation).sum(axis=1)
    assert full_steps.tolist() == [24] * 4 and share.sizes[4 * accumulation:].sum() == 4  # and the 4 samples left
    assert max(max(share.worker_rows(np.arange(100), rank)[1]) for rank in range(world_size)) <= 6


def test_fewer_samples_left_than_workers_is_refused_with_the_numbers():
    with pytest.raises(ValueError, match="leaves 1 of the epoch's 16 samples, fewer than the 2 workers"):
        EpochShare.plan(rows=16, start=15, batching=Batching.at(1, 1, 2, 2))
    with pytest.raises(ValueError, match="the train split has 1 rows, fewer than the 2 workers"):
        EpochShare.plan(rows=1, start=0, batching=Batching.at(4, 1, 2, 2))


def test_checkpoints_are_due_every_n_run_steps_but_not_at_the_epochs_last_step():
    share = EpochShare.plan(rows=40, start=8, batching=Batching.at(2, 2, 2, 2))  # 4 steps of 2 batches of 4 from sample 8 on
    schedule = MidEpochSchedule(CheckpointEvery(steps=3), share, grad_accumulation=2, device=torch.device("cpu"))
    due = {step: schedule.due(run_step=10 + step, epoch_step=step) for step in range(1, 5)}
    assert due == {1: None, 2: 8 + 16, 3: None, 4: None}  # run step 12 is due; 14 is the epoch's last


def test_minutes_follow_the_clock():
    now = [0.0]
    share = EpochShare.plan(rows=40, start=0, batching=Batching.at(2, 1, 1, 1))
    schedule = MidEpochSchedule(CheckpointEvery(minutes=1), share, 1, torch.device("cpu"), clock=lambda: now[0])
    assert schedule.due(1, 1) is None
    now[0] = 61.0
    assert schedule.due(2, 2) == 4
    assert schedule.due(3, 3) is None


def test_the_digest_counts_samples_not_their_order_and_sees_one_twice_and_one_left_out():
    assert sample_digest([5, 9, 11]) == sample_digest([11, 5, 9])
    assert sample_digest([5, 9, 11]) != sample_digest([5, 9, 9])
    assert sample_digest([1, 2, 3, 4]) != sample_digest([1, 1, 3, 5])  # a linear sum would not tell these apart


def test_a_tally_goes_on_from_its_saved_state():
    whole, first, rest = EpochTally(), EpochTally(), None
    batches = [(torch.tensor(float(i)), torch.tensor([i, i + 100])) for i in range(6)]
    for loss, keys in batches:
        whole.add({"ce": loss}, 2, keys)
    for loss, keys in batches[:2]:
        first.add({"ce": loss}, 2, keys)
    rest = EpochTally.from_state(first.gathered().state_dict())
    for loss, keys in batches[2:]:
        rest.add({"ce": loss}, 2, keys)
    assert rest.state_dict() == whole.state_dict()
    assert whole.mean_losses() == {"ce": pytest.approx(2.5)}


def test_a_checkpoint_of_another_train_split_is_refused_by_name():
    manifest = {"splits": {"train": {"rows": 16, "shards": [{"path": "train-00000.parquet", "rows": 16, "sha256": "ab"}]}}}
    inside = {"epoch": 2, "samples": 8, "data": split_key(manifest)}
    check_same_split(inside, manifest, "run X")
    manifest["splits"]["train"]["shards"][0]["sha256"] = "cd"
    with pytest.raises(ValueError, match="run X stopped inside epoch 3 at sample 8 of a train split other than"):
        check_same_split(inside, manifest, "run X")
