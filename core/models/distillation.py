"""Knowledge distillation for dense prediction: a student trained beside a frozen teacher (Liu et al., CVPR 2019,
"Structured Knowledge Distillation for Semantic Segmentation").

pixel_kl: each pixel's class distribution of the student against the teacher's, both softened by the
temperature T, as KL(teacher || student) times T^2 (so the gradient's scale does not shrink with T).
pair_affinity: the pair-wise term. Both maps are averaged over patches of pool x pool pixels, each
patch a node; the cosine similarity of every pair of nodes forms an affinity matrix, and the loss is
the mean squared difference of the student's matrix from the teacher's. The paper takes the nodes
from the last feature maps; here they come from the logits, which every student and teacher of the
segmentation task share in shape whatever their encoders.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Distilled(nn.Module):
    """The student, with the teacher's predictions beside its own while training: {"logits", "teacher"}.
    In eval mode the student's logits alone, as any model of the task. The teacher is held outside the
    module tree: it is not trained, not saved with the student's weights and not seen by DDP."""

    def __init__(self, student: nn.Module, teacher: nn.Module):
        super().__init__()
        self.student = student
        self._teacher = [teacher.eval().requires_grad_(False)]

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def _apply(self, fn, *args, **kwargs):
        self.teacher._apply(fn, *args, **kwargs)  # .to(device) and dtype casts reach the teacher too
        return super()._apply(fn, *args, **kwargs)

    def forward(self, inputs: torch.Tensor):
        logits = self.student(inputs)
        if not self.training:
            return logits
        with torch.no_grad():
            teacher = self.teacher(inputs)
        return {"logits": logits, "teacher": teacher}


def pixel_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    log_student = F.log_softmax(student / temperature, dim=1)
    log_teacher = F.log_softmax(teacher / temperature, dim=1)
    per_pixel = (log_teacher.exp() * (log_teacher - log_student)).sum(1)
    return per_pixel.mean() * temperature ** 2


def pair_affinity(student: torch.Tensor, teacher: torch.Tensor, pool: int) -> torch.Tensor:
    return (_affinity(student, pool) - _affinity(teacher, pool)).square().mean()


def _affinity(maps: torch.Tensor, pool: int) -> torch.Tensor:
    """(B, N, N) cosine similarities of the N patch nodes."""
    nodes = F.avg_pool2d(maps.float(), kernel_size=pool, stride=pool, ceil_mode=True).flatten(2)  # (B, C, N)
    nodes = F.normalize(nodes, dim=1)
    return nodes.transpose(1, 2) @ nodes
