import torch
from torch import nn

from core.profiling.model_summary import format_summary, summarise_model


def test_figures_match_a_hand_count():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1, bias=False))
    model[2].weight.requires_grad_(False)
    summary = summarise_model(model, torch.zeros(1, 3, 8, 8))
    assert [(row.name, row.kind, row.output_shape, row.params) for row in summary.rows] == [
        ("0", "Conv2d", [1, 4, 6, 6], 3 * 4 * 9 + 4), ("1", "ReLU", [1, 4, 6, 6], 0), ("2", "Conv2d", [1, 2, 6, 6], 8)]
    assert (summary.total_params, summary.trainable_params, summary.param_bytes) == (120, 112, 480)
    # forward value and gradient of each leaf's float32 output: 2 x 4 bytes x (144 + 144 + 72)
    assert summary.input_bytes == 3 * 64 * 4 and summary.activation_bytes == 2 * 4 * 360
    text = format_summary(summary, "tiny")
    assert "Total params: 120" in text and "Trainable params: 112" in text and "Non-trainable params: 8" in text


def test_dict_inputs_and_outputs_are_measured_and_training_mode_is_kept():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 3), nn.Linear(1, 3)

        def forward(self, inputs):
            return {"sum": self.a(inputs["x"]) + self.b(inputs["y"])}

    model = TwoInputs().train()
    summary = summarise_model(model, {"x": torch.zeros(1, 2), "y": torch.zeros(1, 1)})
    assert [row.output_shape for row in summary.rows] == [[1, 3], [1, 3]] and summary.total_params == 9 + 6
    assert model.training
