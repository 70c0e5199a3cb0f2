"""A model's size and activation memory for one sample, per leaf module, as torchsummary reports them.

Leaf modules (those without children) are hooked and run once in eval mode on one sample, in the
order they execute. Activation size counts each leaf's output twice, forward value and its
gradient, as torchsummary's "forward/backward pass size" does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

MB = 2**20


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: list[int]
    params: int


@dataclass
class ModelSummary:
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    param_bytes: int = 0
    input_bytes: int = 0
    activation_bytes: int = 0  # forward + backward, one sample


def summarise_model(model: nn.Module, inputs: Any) -> ModelSummary:
    """inputs: what model(inputs) takes for ONE sample (a tensor or a dict of tensors)."""
    summary = ModelSummary()
    hooks = [module.register_forward_hook(_recorder(name, summary))
             for name, module in model.named_modules() if not list(module.children())]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    parameters = list(model.parameters())
    summary.total_params = sum(p.numel() for p in parameters)
    summary.trainable_params = sum(p.numel() for p in parameters if p.requires_grad)
    summary.param_bytes = sum(p.numel() * p.element_size() for p in parameters)
    summary.input_bytes = sum(t.numel() * t.element_size() for t in _tensors(inputs))
    return summary


def _recorder(name: str, summary: ModelSummary):
    def record(module: nn.Module, _inputs, output) -> None:
        tensors = list(_tensors(output))
        summary.rows.append(LayerRow(name, type(module).__name__, list(tensors[0].shape) if tensors else [],
                                     sum(p.numel() for p in module.parameters(recurse=False))))
        summary.activation_bytes += 2 * sum(t.numel() * t.element_size() for t in tensors)
    return record


def _tensors(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def format_summary(summary: ModelSummary, title: str) -> str:
    width = max([len(f"{row.name} ({row.kind})") for row in summary.rows] + [20])
    rule = "-" * (width + 40)
    lines = [title, rule, f"{'Layer (type)':<{width}}{'Output Shape':>26}{'Param #':>14}", "=" * (width + 40)]
    lines += [f"{row.name + ' (' + row.kind + ')':<{width}}{str(row.output_shape):>26}{row.params:>14,}" for row in summary.rows]
    total_mb = (summary.input_bytes + summary.activation_bytes + summary.param_bytes) / MB
    lines += [
        "=" * (width + 40),
        f"Total params: {summary.total_params:,}",
        f"Trainable params: {summary.trainable_params:,}",
        f"Non-trainable params: {summary.total_params - summary.trainable_params:,}",
        rule,
        f"Input size (MB): {summary.input_bytes / MB:.2f}",
        f"Forward/backward pass size (MB): {summary.activation_bytes / MB:.2f}",
        f"Params size (MB): {summary.param_bytes / MB:.2f}",
        f"Estimated Total Size (MB): {total_mb:.2f}",
        rule,
    ]
    return "\n".join(lines)
