"""Augmentation: one geometry for every image of a sample, drawn from (seed, epoch, sample) alone."""
import numpy as np
import pytest

from core.augmentation.augment import augment_batch
from core.augmentation.sample_key import SAMPLE_KEY
from core.config.schema import AugmentConfig

IGNORE = 255


def _batch(n=3, size=(16, 24)):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (n, *size), dtype=np.uint8)
    return {"rgb": rng.integers(0, 256, (n, *size, 3), dtype=np.uint8), "labels": labels,
            "depth": labels.astype(np.float32) * 2 + 1, "sparse_depth": (labels.astype(np.float32) * 2 + 1) * (labels == 3),
            SAMPLE_KEY: np.array([11, 22, 33], dtype=np.int64)[:n]}


FULL = AugmentConfig(hflip=0.5, scale=(0.6, 1.4), color_jitter=0.3)


def test_every_image_of_a_sample_gets_the_same_geometry():
    out = augment_batch(_batch(), FULL, seed=0, epoch=1, ignore_index=IGNORE)
    labels, depth, sparse = out["labels"].numpy(), out["depth"].numpy(), out["sparse_depth"].numpy()
    labelled = labels != IGNORE
    assert np.array_equal(depth[labelled], labels[labelled] * 2.0 + 1)  # depth was 2 x label + 1 everywhere
    assert (depth[~labelled] == 0).all(), "past the image edge: no measurement"
    assert np.array_equal(sparse > 0, labelled & (labels == 3))
    assert out["rgb"].shape == (3, 16, 24, 3) and out["rgb"].dtype.is_floating_point is False


def test_a_flip_is_exact_and_mirrors_all_images():
    batch = _batch()
    out = augment_batch(batch, AugmentConfig(hflip=1.0), seed=0, epoch=0, ignore_index=IGNORE)
    for name in ("rgb", "labels", "depth", "sparse_depth"):
        assert np.array_equal(out[name].numpy(), batch[name][:, :, ::-1])


def test_draws_depend_on_seed_epoch_and_sample_not_on_the_batch_they_come_in():
    batch = _batch()
    whole = augment_batch(batch, FULL, seed=0, epoch=1, ignore_index=IGNORE)
    alone = augment_batch({k: v[1:2] for k, v in batch.items()}, FULL, seed=0, epoch=1, ignore_index=IGNORE)
    assert np.array_equal(whole["rgb"][1].numpy(), alone["rgb"][0].numpy())
    again = augment_batch(batch, FULL, seed=0, epoch=1, ignore_index=IGNORE)
    assert all(np.array_equal(whole[k].numpy(), again[k].numpy()) for k in whole)
    other_epoch = augment_batch(batch, FULL, seed=0, epoch=2, ignore_index=IGNORE)
    assert not np.array_equal(whole["rgb"].numpy(), other_epoch["rgb"].numpy())


@pytest.mark.parametrize("epoch, size", [(0, (16, 24)), (1, (8, 12)), (3, (32, 48))])
def test_size_schedule_sets_the_training_size_by_epoch(epoch, size):
    config = AugmentConfig(size_schedule=[{"from_epoch": 1, "size": [8, 12]}, {"from_epoch": 3, "size": [32, 48]}])
    out = augment_batch(_batch(), config, seed=0, epoch=epoch, ignore_index=IGNORE)
    assert tuple(out["labels"].shape[1:]) == size == tuple(out["rgb"].shape[1:3])
    assert set(np.unique(out["labels"].numpy())) <= set(range(5)), "resizing labels never invents a class"
