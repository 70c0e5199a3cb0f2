import math

import torch
import torch.nn.functional as F

from core.models.losses import cross_entropy, focal_loss
from core.evaluation.segmentation_metrics import IoUStats, constant_prediction_miou, iou_per_class


def test_iou_counts_and_iou_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 0]])
    predicted = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 0]])
    confusion = IoUStats(num_classes=3, ignore_index=255)
    confusion.update(predicted, target)
    # true 0: predicted 0,1,0 ; true 1: 1,1 ; true 2: 2,0 ; the ignored pixel is not counted
    assert confusion.counts.tolist() == [[2, 2, 1], [1, 1, 0], [1, 0, 1]]  # true positives, false positives, false negatives
    iou = iou_per_class(*confusion.counts)
    assert torch.allclose(iou, torch.tensor([2 / 4, 2 / 3, 1 / 2], dtype=torch.float64))
    metrics = confusion.compute(["a", "b", "c"])
    assert math.isclose(metrics["miou"], (2 / 4 + 2 / 3 + 1 / 2) / 3)
    assert math.isclose(metrics["pixel_acc"], 5 / 7)
    assert math.isclose(metrics["iou/b"], 2 / 3)


def test_absent_class_is_left_out_of_the_mean():
    confusion = IoUStats(num_classes=3, ignore_index=255)
    confusion.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    metrics = confusion.compute(["a", "b", "c"])
    assert math.isnan(metrics["iou/c"]) and metrics["miou"] == 1.0


def test_constant_prediction_miou_by_hand():
    truth_pixels = torch.tensor([6, 3, 1])
    # predicting class 0 everywhere: IoU(0) = 6/10, IoU(1) = IoU(2) = 0
    assert math.isclose(constant_prediction_miou(truth_pixels, 0), 0.6 / 3)


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    logits = torch.randn(2, 4, 5, 5)
    target = torch.randint(0, 4, (2, 5, 5))
    target[0, 0, 0] = 255
    expected = F.cross_entropy(logits, target, ignore_index=255)
    assert torch.allclose(focal_loss(logits, target, gamma=0.0, alpha=None, ignore_index=255), expected)


def test_focal_loss_down_weights_easy_pixels():
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    easy = torch.tensor([[[[4.0]], [[-4.0]]]])
    ce = cross_entropy(easy, target, 255)
    assert focal_loss(easy, target, gamma=2.0, alpha=None, ignore_index=255) < ce * 0.01


def test_losses_with_no_labelled_pixel_are_zero_not_nan():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), 255)
    for loss in (cross_entropy(logits, target, 255), focal_loss(logits, target, 2.0, 0.25, 255)):
        assert loss.item() == 0.0
        loss.backward()
