"""The lighting task: the volume renderer against hand-computed composites, its losses, their weights, LPIPS's plumbing, learning."""
import math

import numpy as np
import pytest
import torch
import torchvision

from core.evaluation import lpips
from core.evaluation.lighting_metrics import LightingMetrics
from core.models.lighting import LightingVolumeNet
from core.tasks.base import weighted_sum
from core.tasks.catalog import build_task, task_config
from core.tasks.lighting import rendering
from core.tasks.lighting.task import DEFAULT_WEIGHTS

EXTENT, RESOLUTION, SIZE, ENVMAP = 2.0, 16, 16, 8
INTRINSICS = torch.tensor([[SIZE / 2 / math.tan(math.radians(30)), 0, SIZE / 2], [0, SIZE / 2 / math.tan(math.radians(30)), SIZE / 2],
                           [0, 0, 1.0]])
COLOUR = torch.tensor([51, 102, 204]) / 255.0  # multiples of 1/255: an 8-bit image holds them exactly


def _manifest(probes: int = 1) -> dict:
    return {"name": "test-rooms", "image_size": [SIZE, SIZE], "volume": {"resolution": RESOLUTION, "extent_m": EXTENT},
            "envmap": {"height": ENVMAP, "width": 2 * ENVMAP, "probes": probes},
            "stats": {"rgb_mean": [0.5] * 3, "rgb_std": [0.25] * 3, "mean_envmap": torch.full((ENVMAP, 2 * ENVMAP, 3), 0.3).tolist()}}


def _task(weights: dict | None = None, resolution: int = RESOLUTION):
    config = task_config(name="lighting", lighting={"resolution": resolution, "samples_per_ray": 64, "view_size": SIZE, "features": 4,
                                                    "volume_channels": 4}, loss={"weights": weights or DEFAULT_WEIGHTS})
    return build_task(config, _manifest())


def _slab_volume(front: float, colour: torch.Tensor) -> torch.Tensor:
    """(1, 5, R, R, R): opaque beyond z = front (one colour everywhere, alpha only in the slab), an emitting block in it."""
    centres = torch.linspace(-EXTENT, EXTENT, RESOLUTION + 1)[:-1] + EXTENT / RESOLUTION
    z = centres.view(-1, 1, 1).expand(RESOLUTION, RESOLUTION, RESOLUTION)
    volume = torch.zeros(1, 5, RESOLUTION, RESOLUTION, RESOLUTION)
    volume[0, :3] = colour.view(3, 1, 1, 1)
    volume[0, 3] = (z > front).float()
    volume[0, 4, -3:, 6:9, 6:9] = 1.0
    return volume


def _renders(net: LightingVolumeNet, volume: torch.Tensor, inputs: dict) -> dict:
    return {"alpha": volume[:, 3:4], "colour": volume[:, :3], "emitter": volume[:, 4:5], **net.render(volume[:, :3], volume[:, 3:4], inputs)}


def _scene():
    """A perfect prediction and its targets, made consistent by rendering the true volume."""
    task = _task()
    net = task.build_model()
    inputs = {"images": torch.zeros(1, 4, SIZE, SIZE), "intrinsics": INTRINSICS[None], "probes": torch.tensor([[[0.2, -0.1, 0.3]]]),
              "novel_camera": torch.cat([torch.eye(3), torch.tensor([[0.1, 0.0, 0.05]])])[None]}
    truth = _slab_volume(1.0, COLOUR)
    perfect = _renders(net, truth, inputs)
    to_bytes = lambda image: (image.clamp(0, 1) * 255).round().to(torch.uint8)  # noqa: E731
    targets = {"envmaps": perfect["envmaps"].detach(), "rgb": to_bytes(perfect["self_view"]), "rgb_novel": to_bytes(perfect["novel_view"]),
               "depth": torch.full((1, SIZE, SIZE), 1.0), "volume": truth}
    return task, net, inputs, perfect, targets


def test_the_renderer_composites_two_voxels_front_to_back_as_by_hand():
    # two layers along z (each uniform in x and y): colour c1 and alpha 0.25 in front, c2 and alpha 0.6 behind
    c1, c2, a1, a2 = torch.tensor([1.0, 0.0, 0.2]), torch.tensor([0.0, 0.5, 1.0]), 0.25, 0.6
    colour = torch.stack([c1, c2]).T.reshape(1, 3, 2, 1, 1).expand(1, 3, 2, 2, 2)
    alpha = torch.tensor([a1, a2]).view(1, 1, 2, 1, 1).expand(1, 1, 2, 2, 2)
    volume = rendering.volumes(colour.contiguous(), alpha.contiguous(), extent=1.0)  # voxel centres at -0.5 and 0.5
    lengths = torch.tensor([[[1.5, 2.5]]])  # from z = -2 along +z: exactly the two voxels' centres
    out = rendering.march(volume, torch.tensor([[[0.0, 0.0, -2.0]]]), torch.tensor([[[0.0, 0.0, 1.0]]]), lengths)
    assert torch.allclose(out["colour"][0, 0], a1 * c1 + (1 - a1) * a2 * c2, atol=1e-6)
    assert out["opacity"][0, 0].item() == pytest.approx(1 - (1 - a1) * (1 - a2), abs=1e-6)


def test_an_opaque_shell_around_the_probe_renders_its_colour_in_every_direction():
    centres = torch.linspace(-EXTENT, EXTENT, RESOLUTION + 1)[:-1] + EXTENT / RESOLUTION
    z, y, x = torch.meshgrid(centres, centres, centres, indexing="ij")
    radius = (x**2 + y**2 + z**2).sqrt()
    alpha = ((radius > 1.0) & (radius < 1.7)).float()[None, None]
    colour = COLOUR.view(1, 3, 1, 1, 1).expand(1, 3, RESOLUTION, RESOLUTION, RESOLUTION).contiguous()
    envmap = rendering.environment_maps(rendering.volumes(colour, alpha, EXTENT), torch.tensor([[[0.1, -0.1, 0.2]]]), ENVMAP, 96, EXTENT)
    assert envmap.shape == (1, 1, ENVMAP, 2 * ENVMAP, 3)
    assert torch.allclose(envmap, COLOUR.expand_as(envmap), atol=1e-4)


def test_a_probe_outside_the_volume_sees_the_volume_from_outside_not_a_nan():
    alpha = torch.zeros(1, 1, RESOLUTION, RESOLUTION, RESOLUTION)
    alpha[..., 4:12, 4:12, 4:12] = 1.0
    colour = COLOUR.view(1, 3, 1, 1, 1).expand(1, 3, RESOLUTION, RESOLUTION, RESOLUTION).contiguous()
    envmap = rendering.environment_maps(rendering.volumes(colour, alpha, EXTENT), torch.tensor([[[0.0, 0.0, -3.5]]]), ENVMAP, 96, EXTENT)
    assert torch.isfinite(envmap).all()
    forward, backward = envmap[0, 0, ENVMAP // 2, ENVMAP], envmap[0, 0, ENVMAP // 2, 0]  # the middle column looks along +Z
    assert torch.allclose(forward, COLOUR, atol=1e-4) and backward.abs().max() == 0


def test_each_loss_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    task, net, inputs, perfect, targets = _scene()
    assert set(task.losses(perfect, targets)) == set(DEFAULT_WEIGHTS)
    for name, value in task.losses(perfect, targets).items():
        assert value.item() == pytest.approx(0.0, abs=1e-4), name  # SSIM of equal images is 1 up to float rounding
    wrong_volume = _slab_volume(0.4, torch.tensor([0.8, 0.3, 0.1]))
    wrong_volume[:, 4] = torch.roll(wrong_volume[:, 4], 5, dims=-1)
    for name, value in task.losses(_renders(net, wrong_volume, inputs), targets).items():
        assert value.item() > 1e-3, name


def test_a_loss_at_weight_zero_gives_no_gradient_and_each_one_on_gives_its_own():
    task, net, inputs, _, targets = _scene()
    torch.manual_seed(0)
    inputs = {**inputs, "images": torch.randn(1, 4, SIZE, SIZE), "depth": torch.full((1, SIZE, SIZE), 1.0)}

    def gradient(weights: dict[str, float]) -> torch.Tensor:
        net.zero_grad()
        weighted_sum(task.losses(net(inputs), targets), weights).backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()])

    everything = gradient(dict.fromkeys(DEFAULT_WEIGHTS, 1.0))
    for name in DEFAULT_WEIGHTS:
        alone = gradient({n: float(n == name) for n in DEFAULT_WEIGHTS})
        without = gradient({n: float(n != name) for n in DEFAULT_WEIGHTS})
        assert alone.abs().max() > 0, f"{name} on alone moves the network"
        assert torch.allclose(everything - without, alone, atol=1e-5 * everything.abs().max().item()), \
            f"{name} at weight 0 removes exactly its own gradient"


def test_the_metrics_and_their_baselines_are_finite_for_an_empty_room_and_black_maps():
    task, net, inputs, perfect, targets = _scene()
    dark = {**targets, "envmaps": torch.zeros_like(targets["envmaps"]), "volume": torch.zeros_like(targets["volume"]),
            "rgb": torch.zeros_like(targets["rgb"])}
    empty = _renders(net, torch.zeros_like(targets["volume"]), inputs)
    assert all(torch.isfinite(value) for value in task.losses(empty, dark).values())
    metrics = task.new_metrics()
    metrics.update(empty, dark)
    figures = {**metrics.all_reduce().compute(), **metrics.baselines()}
    assert all(math.isfinite(value) for value in figures.values())
    assert figures["envmap_rmse"] == 0 and figures["envmap_psnr"] == 100.0, "a perfect black map scores the capped PSNR"
    assert figures["image_colour_envmap_rmse"] == 0, "the black image's mean colour is the black map"


def test_lpips_is_absent_without_its_backbone_and_runs_from_torch_home_when_the_file_is_there(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert "alexnet-owt-7be5be79.pth" in lpips.unavailable_reason()
    assert _task().new_metrics().lpips is None
    task, net, inputs, perfect, targets = _scene()
    metrics = task.new_metrics()
    metrics.update(perfect, targets)
    assert "novel_lpips" not in metrics.all_reduce().compute()
    # the plumbing only: a randomly initialised backbone stands where the ImageNet weights would be
    lpips.backbone_file().parent.mkdir(parents=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), lpips.backbone_file())
    assert lpips.unavailable_reason() is None
    metrics = LightingMetrics(torch.zeros(ENVMAP, 2 * ENVMAP, 3), lpips.Lpips())
    metrics.update(perfect, targets)
    figures = metrics.all_reduce().compute()
    assert figures["novel_lpips"] == pytest.approx(0.0, abs=1e-6), "identical views are at distance 0"


def test_the_previews_show_input_environment_maps_novel_views_and_alpha_side_by_side():
    task, net, inputs, perfect, targets = _scene()
    inputs = {**inputs, "images": torch.zeros(1, 4, SIZE, SIZE)}
    (preview,) = task.previews(inputs, perfect, targets)
    assert preview.dtype == np.uint8 and preview.shape == (64, 5 * 64, 3)
