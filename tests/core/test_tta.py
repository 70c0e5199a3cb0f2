"""Test-time augmentation: views mapped back onto the input's pixels and averaged as the task says."""
import pytest
import torch
from torch import nn

from core.evaluation import tta
from core.evaluation.segmentation_metrics import IoUStats

SEGMENTATION = tta.Support(tta.PROBABILITIES, scales=True, multiple=1)


class PerPixel(nn.Module):
    """Logits from each pixel alone (a 1x1 convolution): flipping the input flips the output, nothing else."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


class LeftToRight(nn.Module):
    """Class 1 where a pixel is brighter than its left neighbour: flipping changes the answer."""

    def forward(self, x):
        step = torch.zeros_like(x[:, :1])
        step[..., 1:] = x[:, :1, :, 1:] - x[:, :1, :, :-1]
        return torch.cat([torch.zeros_like(step), step], dim=1)


def test_a_flip_equivariant_model_scores_the_same_with_and_without_flip_tta():
    torch.manual_seed(1)
    images, labels = torch.rand(3, 3, 8, 8), torch.randint(0, 4, (3, 8, 8))
    model = PerPixel().eval()
    augmented = tta.Augmented(model, tta.parse("flip"), SEGMENTATION)
    with torch.no_grad():
        plain, averaged = model(images), augmented(images)
    assert torch.equal(plain.argmax(1), averaged.argmax(1))
    assert torch.allclose(averaged.exp(), plain.softmax(1), atol=1e-6)
    scores = []
    for outputs in (plain, averaged):
        stats = IoUStats(4, 255)
        stats.update(outputs.argmax(1), labels)
        scores.append(stats.compute(["a", "b", "c", "d"]))
    assert scores[0] == scores[1]


def test_averaging_the_flipped_view_changes_a_prediction_as_computed_by_hand():
    image = torch.tensor([0.0, 1.0, 3.0]).expand(1, 3, 1, 3).contiguous()
    model = LeftToRight()
    averaged = tta.Augmented(model, tta.parse("flip"), SEGMENTATION)(image)
    # Class 1's logit (class 0's is 0): as it is, the steps from the left, [0, 1, 2]; flipped, [0, -2, -1],
    # which mapped back onto the pixels reads [-1, -2, 0]. Its probability is the logistic of the logit.
    plain_p1 = torch.sigmoid(torch.tensor([0.0, 1.0, 2.0]))
    flipped_p1 = torch.sigmoid(torch.tensor([-1.0, -2.0, 0.0]))
    by_hand = (plain_p1 + flipped_p1) / 2
    assert torch.allclose(averaged.exp()[0, 1, 0], by_hand, atol=1e-6)
    assert model(image).argmax(1).tolist() == [[[0, 1, 1]]]
    assert averaged.argmax(1).tolist() == [[[0, 0, 1]]], "the middle pixel: 0.73 as it is, 0.12 flipped, 0.43 on average"


def test_values_average_over_flips_and_scales_come_back_at_the_input_size():
    double = tta.Augmented(nn.Identity(), tta.parse("flip,scales=0.5,1,2"), tta.Support(tta.VALUES, scales=True))
    depth = torch.arange(16.0).reshape(1, 1, 4, 4)
    averaged = double({"sparse": depth})
    assert averaged["sparse"].shape == depth.shape
    assert torch.allclose(tta.Augmented(nn.Identity(), tta.parse("flip"), tta.Support(tta.VALUES, False))(depth), depth)


@pytest.mark.parametrize("spec, message", [
    ("mirror", "'mirror' is not an augmentation"), ("scales=1", "that is the plain prediction"),
    ("scales=0.5,x", "scales must be numbers"), ("flip,scales=0,1", "scales must be positive"),
])
def test_bad_specs_are_refused_naming_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        tta.parse(spec)


def test_a_task_says_what_it_takes():
    assert tta.parse("flip,scales=0.75,1,1.25") == tta.TTA(True, (0.75, 1.0, 1.25))
    with pytest.raises(ValueError, match="takes --tta flip only"):
        tta.check(tta.parse("scales=0.5,1"), tta.Support(tta.VALUES, scales=False), "depth_completion")
    with pytest.raises(ValueError, match="the mesh_reconstruction task has no test-time augmentation"):
        tta.check(tta.parse("flip"), None, "mesh_reconstruction")
