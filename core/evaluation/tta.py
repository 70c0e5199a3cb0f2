"""Test-time augmentation: a model's predictions averaged over flipped (and rescaled) copies of its inputs.

`--tta flip,scales=0.75,1,1.25` reads as TTA(flip=True, scales=(0.75, 1.0, 1.25)): every scale with and
without a horizontal flip. Each copy's outputs are mapped back onto the original pixels (unflipped,
resized to the input's size) and averaged: class probabilities for a task whose outputs are logits
(the average returned as its log, so that argmax and the metrics read it as they read logits), the
values themselves for one that predicts quantities such as depth. A task says which, and whether
it can be rescaled at all (sparse depth cannot: resizing moves and blends its measurements).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

PROBABILITIES, VALUES = "probabilities", "values"


@dataclass(frozen=True)
class Support:
    """What a task allows: how its outputs average, whether its inputs may be rescaled, the side lengths its model takes."""

    average: str  # PROBABILITIES or VALUES
    scales: bool
    multiple: int = 1


@dataclass(frozen=True)
class TTA:
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)

    def views(self) -> list[tuple[bool, float]]:
        return [(flipped, scale) for scale in self.scales for flipped in ((False, True) if self.flip else (False,))]

    def describe(self) -> str:
        return ",".join((["flip"] if self.flip else []) + ([f"scales={','.join(f'{s:g}' for s in self.scales)}"]
                                                          if self.scales != (1.0,) else []))


def parse(text: str) -> TTA:
    """'flip', 'scales=0.75,1,1.25' or both ('flip,scales=...'); the scales' list runs to the end."""
    head, _, scales = text.partition("scales=")
    words = [word for word in head.split(",") if word]
    unknown = [word for word in words if word != "flip"]
    if unknown:
        raise ValueError(f"--tta {text}: {unknown[0]!r} is not an augmentation; give flip and/or scales=S1,S2,... "
                         "(e.g. flip,scales=0.75,1,1.25)")
    try:
        parsed = tuple(float(s) for s in scales.split(",") if s) if scales else (1.0,)
    except ValueError:
        raise ValueError(f"--tta {text}: scales must be numbers, e.g. scales=0.75,1,1.25") from None
    if not parsed or any(s <= 0 for s in parsed):
        raise ValueError(f"--tta {text}: scales must be positive")
    tta = TTA("flip" in words, parsed)
    if tta.views() == [(False, 1.0)]:
        raise ValueError(f"--tta {text}: that is the plain prediction; give flip and/or scales other than 1")
    return tta


def check(tta: TTA, support: Support | None, task_name: str) -> None:
    if support is None:
        raise ValueError(f"the {task_name} task has no test-time augmentation")
    if tta.scales != (1.0,) and not support.scales:
        raise ValueError(f"the {task_name} task takes --tta flip only: rescaling its inputs would move and blend measurements")


class Augmented(nn.Module):
    """The model, its outputs averaged over the views of tta as the task's Support says."""

    def __init__(self, model: nn.Module, tta: TTA, support: Support):
        super().__init__()
        self.model, self.tta, self.average, self.multiple = model, tta, support.average, support.multiple

    def forward(self, inputs: Any) -> Any:
        height, width = _image(inputs).shape[-2:]
        total = None
        for flipped, scale in self.tta.views():
            size = (_rounded(height * scale, self.multiple), _rounded(width * scale, self.multiple))
            outputs = self.model(_each(inputs, lambda t: _flip(_resize(t, size), flipped)))
            outputs = _each(outputs, lambda t: _resize(_flip(t, flipped), (height, width)))
            if self.average == PROBABILITIES:
                outputs = _each(outputs, lambda t: t.softmax(1))
            total = outputs if total is None else _added(total, outputs)
        count = len(self.tta.views())
        mean = _each(total, lambda t: t / count)
        return _each(mean, lambda t: t.clamp_min(1e-12).log()) if self.average == PROBABILITIES else mean


def _each(value: Any, apply: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """apply to each image-shaped (4-D) tensor of a tensor or a dict of them; anything else as it is."""
    if isinstance(value, dict):
        return {key: _each(item, apply) for key, item in value.items()}
    return apply(value) if isinstance(value, torch.Tensor) and value.dim() == 4 else value


def _added(a: Any, b: Any) -> Any:
    """a + b for the image-shaped tensors; anything else as the first view gave it."""
    if isinstance(a, dict):
        return {key: _added(a[key], b[key]) for key in a}
    return a + b if isinstance(a, torch.Tensor) and a.dim() == 4 else a


def _image(inputs: Any) -> torch.Tensor:
    return next(t for t in inputs.values() if t.dim() == 4) if isinstance(inputs, dict) else inputs


def _flip(tensor: torch.Tensor, flipped: bool) -> torch.Tensor:
    return tensor.flip(-1) if flipped else tensor


def _resize(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(tensor.shape[-2:]) == size:
        return tensor
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)


def _rounded(length: float, multiple: int) -> int:
    return max(multiple, int(round(length / multiple)) * multiple)
