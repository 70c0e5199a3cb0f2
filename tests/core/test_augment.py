"""Augmentation: one geometry for every image of a sample, drawn from (seed, epoch, sample) alone."""
import numpy as np
import pytest

from core.augmentation.augment import augment_batch
from core.augmentation.sample_key import SAMPLE_KEY
from core.config.sections import AugmentConfig
from core.tasks.columns import Column, Kind

IGNORE = 255
COLUMNS = [Column("rgb", Kind.IMAGE, (3,)), Column("labels", Kind.LABEL_MAP), Column("depth", Kind.DEPTH_MAP),
           Column("sparse_depth", Kind.DEPTH_MAP), Column("intrinsics", Kind.CAMERA), Column("pose", Kind.MATRIX, (3, 4))]


def _batch(n=3, size=(16, 24)):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (n, *size), dtype=np.uint8)
    return {"rgb": rng.integers(0, 256, (n, *size, 3), dtype=np.uint8), "labels": labels,
            "depth": labels.astype(np.float32) * 2 + 1, "sparse_depth": (labels.astype(np.float32) * 2 + 1) * (labels == 3),
            SAMPLE_KEY: np.array([11, 22, 33], dtype=np.int64)[:n]}


FULL = AugmentConfig(hflip=0.5, scale=(0.6, 1.4), color_jitter=0.3)


def test_every_image_of_a_sample_gets_the_same_geometry():
    out = augment_batch(_batch(), COLUMNS, FULL, seed=0, epoch=1, ignore_index=IGNORE)
    labels, depth, sparse = out["labels"].numpy(), out["depth"].numpy(), out["sparse_depth"].numpy()
    labelled = labels != IGNORE
    assert np.array_equal(depth[labelled], labels[labelled] * 2.0 + 1)  # depth was 2 x label + 1 everywhere
    assert (depth[~labelled] == 0).all(), "past the image edge: no measurement"
    assert np.array_equal(sparse > 0, labelled & (labels == 3))
    assert out["rgb"].shape == (3, 16, 24, 3) and out["rgb"].dtype.is_floating_point is False


def test_a_flip_is_exact_and_mirrors_all_images():
    batch = _batch()
    out = augment_batch(batch, COLUMNS, AugmentConfig(hflip=1.0), seed=0, epoch=0, ignore_index=IGNORE)
    for name in ("rgb", "labels", "depth", "sparse_depth"):
        assert np.array_equal(out[name].numpy(), batch[name][:, :, ::-1])


def test_draws_depend_on_seed_epoch_and_sample_not_on_the_batch_they_come_in():
    batch = _batch()
    whole = augment_batch(batch, COLUMNS, FULL, seed=0, epoch=1, ignore_index=IGNORE)
    alone = augment_batch({k: v[1:2] for k, v in batch.items()}, COLUMNS, FULL, seed=0, epoch=1, ignore_index=IGNORE)
    assert np.array_equal(whole["rgb"][1].numpy(), alone["rgb"][0].numpy())
    again = augment_batch(batch, COLUMNS, FULL, seed=0, epoch=1, ignore_index=IGNORE)
    assert all(np.array_equal(whole[k].numpy(), again[k].numpy()) for k in whole)
    other_epoch = augment_batch(batch, COLUMNS, FULL, seed=0, epoch=2, ignore_index=IGNORE)
    assert not np.array_equal(whole["rgb"].numpy(), other_epoch["rgb"].numpy())


@pytest.mark.parametrize("epoch, size", [(0, (16, 24)), (1, (8, 12)), (3, (32, 48))])
def test_size_schedule_sets_the_training_size_by_epoch(epoch, size):
    config = AugmentConfig(size_schedule=[{"from_epoch": 1, "size": [8, 12]}, {"from_epoch": 3, "size": [32, 48]}])
    out = augment_batch(_batch(), COLUMNS, config, seed=0, epoch=epoch, ignore_index=IGNORE)
    assert tuple(out["labels"].shape[1:]) == size == tuple(out["rgb"].shape[1:3])
    assert set(np.unique(out["labels"].numpy())) <= set(range(5)), "resizing labels never invents a class"


@pytest.mark.parametrize("scale", [(2.0, 2.0), (0.5, 0.5), (0.7, 1.3)])
def test_the_camera_follows_its_pixels_and_other_matrices_stay(scale):
    """Each pixel carries its own label id; a ray through the original pixel's centre must reach the pixel
    that id lands on, through the augmented camera."""
    rng = np.random.default_rng(1)
    height, width = 12, 16
    ids = np.arange(height * width, dtype=np.uint8).reshape(height, width)
    camera = np.array([[20.0, 0, 7.3], [0, 18.0, 6.1], [0, 0, 1]], np.float32)
    pose = rng.standard_normal((4, 3, 4)).astype(np.float32)
    batch = {"labels": np.stack([ids] * 4), "intrinsics": np.stack([camera] * 4), "pose": pose,
             SAMPLE_KEY: np.array([1, 2, 3, 4], dtype=np.int64)}
    out = augment_batch(batch, COLUMNS, AugmentConfig(hflip=0.5, scale=scale), seed=0, epoch=0, ignore_index=IGNORE)
    assert np.array_equal(out["pose"].numpy(), pose)
    flipped = 0
    for labels, moved in zip(out["labels"].numpy(), out["intrinsics"].numpy()):
        rows, cols = np.nonzero(labels != IGNORE)
        source = labels[rows, cols].astype(int)
        rays = np.stack([(source % width + 0.5 - camera[0, 2]) / camera[0, 0], (source // width + 0.5 - camera[1, 2]) / camera[1, 1]])
        reached = np.stack([moved[0, 0] * rays[0] + moved[0, 2], moved[1, 1] * rays[1] + moved[1, 2]])
        error = np.abs(reached - np.stack([cols + 0.5, rows + 0.5]))
        assert error.max() <= max(scale) + 0.5, f"rays miss their pixels by up to {error.max():.2f} px"
        flipped += moved[0, 0] < 0
    assert 0 < flipped < 4, "the draws flipped some samples and not others"


WEATHER = {"rain": 1.0, "snow": 1.0, "fog": 1.0, "sun_flare": 1.0, "sun_flare_radius": 6, "motion_blur": 1.0}


def test_weather_changes_rgb_only_leaves_the_geometry_and_repeats_per_sample():
    batch = _batch()
    plain = augment_batch(batch, COLUMNS, FULL, seed=0, epoch=1, ignore_index=IGNORE)
    stormy = AugmentConfig(**{**FULL.model_dump(), "weather": WEATHER})
    wet = augment_batch(batch, COLUMNS, stormy, seed=0, epoch=1, ignore_index=IGNORE)
    for name in ("labels", "depth", "sparse_depth"):
        assert np.array_equal(plain[name].numpy(), wet[name].numpy()), f"{name} moved"
    assert wet["rgb"].shape == plain["rgb"].shape and wet["rgb"].dtype == plain["rgb"].dtype
    assert (wet["rgb"] != plain["rgb"]).float().mean() > 0.5
    alone = augment_batch({k: v[2:3] for k, v in batch.items()}, COLUMNS, stormy, seed=0, epoch=1, ignore_index=IGNORE)
    assert np.array_equal(wet["rgb"][2].numpy(), alone["rgb"][0].numpy()), "a sample's weather does not depend on its batch"


def test_weather_at_probability_zero_is_no_weather():
    batch = _batch()
    none = AugmentConfig(**{**FULL.model_dump(), "weather": {"rain": 0.0}})
    off = augment_batch(batch, COLUMNS, none, seed=0, epoch=1, ignore_index=IGNORE)
    plain = augment_batch(batch, COLUMNS, FULL, seed=0, epoch=1, ignore_index=IGNORE)
    assert np.array_equal(off["rgb"].numpy(), plain["rgb"].numpy())
