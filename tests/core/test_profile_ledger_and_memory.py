"""The ledger's predictions by hand, and out-of-memory recognised from real allocator failures."""
import pytest
import torch

from core.profiling import memory, ledger as profile_ledger

KEY = {"model": "segmentation:fpn-resnet18", "input_size": "3x64x64", "device": "cpu", "workers": 2,
       "versions": {"torch": "2.11.0", "ray": "2.60.0"}}


def _entry(batch, s_per_it, memory_mb, parallelism=1, **changes):
    return {**KEY, "batch_size": batch, "loader_parallelism": parallelism, "s_per_it": s_per_it, "peak_memory_mb": memory_mb,
            **changes}


def test_prediction_at_a_measured_batch_is_the_median_of_its_rows():
    entries = [_entry(4, 0.30, 900), _entry(4, 0.50, 1000), _entry(4, 0.40, 950), _entry(8, 9.0, 9000)]
    estimate = profile_ledger.predict(entries, {**KEY, "batch_size": 4, "loader_parallelism": 1}, train_rows=100)
    assert estimate.s_per_it == pytest.approx(0.40) and estimate.peak_memory_mb == pytest.approx(950)
    assert estimate.epoch_s == pytest.approx(13 * 0.40)  # ceil(100 / (2 workers x 4))
    assert len(estimate.used) == 3 and "median of 3" in estimate.method


def test_prediction_between_and_beyond_batches_follows_the_line_through_them():
    entries = [_entry(2, 0.2, 1000), _entry(8, 0.5, 1600)]
    inside = profile_ledger.predict(entries, {**KEY, "batch_size": 4, "loader_parallelism": 1}, train_rows=64)
    assert inside.s_per_it == pytest.approx(0.3) and inside.peak_memory_mb == pytest.approx(1200)
    assert inside.method.startswith("interpolated")
    beyond = profile_ledger.predict(entries, {**KEY, "batch_size": 16, "loader_parallelism": 1}, train_rows=64)
    assert beyond.s_per_it == pytest.approx(0.9) and beyond.method.startswith("extrapolated")


def test_prediction_prefers_the_same_versions_and_parallelism_and_says_when_it_cannot():
    entries = [_entry(4, 1.0, 900, versions={"torch": "2.10.0", "ray": "2.59.0"}), _entry(4, 0.3, 900, parallelism=2),
               _entry(4, 0.5, 900, parallelism=1)]
    estimate = profile_ledger.predict(entries, {**KEY, "batch_size": 4, "loader_parallelism": 1}, train_rows=8)
    assert estimate.s_per_it == pytest.approx(0.5)
    old = profile_ledger.predict(entries[:1], {**KEY, "batch_size": 4, "loader_parallelism": 1}, train_rows=8)
    assert "other package versions" in old.method


def test_prediction_refuses_a_single_batch_size_elsewhere_and_an_unknown_workload():
    with pytest.raises(profile_ledger.NoMeasurements, match="only at batch \\[8\\]"):
        profile_ledger.predict([_entry(8, 0.5, 900)], {**KEY, "batch_size": 4, "loader_parallelism": 1}, train_rows=8)
    with pytest.raises(profile_ledger.NoMeasurements, match="holds: segmentation:fpn-resnet18 3x64x64 on cpu x2 workers"):
        profile_ledger.predict([_entry(8, 0.5, 900)], {**KEY, "workers": 4, "batch_size": 4, "loader_parallelism": 1}, train_rows=8)


def test_allocator_failures_are_out_of_memory_and_other_errors_are_not():
    with pytest.raises(RuntimeError) as failure:
        torch.empty(2**62, dtype=torch.uint8)
    assert memory.is_out_of_memory(failure.value)
    assert memory.is_out_of_memory("ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory")
    assert not memory.is_out_of_memory(ValueError("Expected more than 1 value per channel when training"))


def test_peak_memory_is_measured_per_stretch():
    cpu = torch.device("cpu")
    memory.reset_peak(cpu)
    big = torch.ones(64 * 2**20, dtype=torch.uint8)  # 64 MiB, touched
    after_big = memory.peak_bytes(cpu)
    del big
    memory.reset_peak(cpu)
    assert memory.peak_bytes(cpu) < after_big - 32 * 2**20


def test_each_task_keys_its_own_workload():
    """Depth and mesh models once shared the segmentation key "fpn-resnet18", and predictions mixed their rows."""
    from core.config.loading import load_config
    from jobs._cli import DEFAULT_CONFIG

    keys = {name: profile_ledger.workload(load_config(DEFAULT_CONFIG.parent / f"{name}.yaml"), (64, 64))
            for name in ("quickstart", "depth_completion", "mesh_reconstruction")}
    assert keys == {"quickstart": {"model": "segmentation:fpn-resnet18", "input_size": "rgb 64x64"},
                    "depth_completion": {"model": "depth_completion:w16-cspn6", "input_size": "rgb+sparse_depth+labels 64x64"},
                    "mesh_reconstruction": {"model": "mesh_reconstruction:grid32x32-s2", "input_size": "rgb+sparse_depth 64x64"}}
