"""Encoder-decoder segmentation networks from segmentation-models-pytorch, single-device."""
from __future__ import annotations

import segmentation_models_pytorch as smp
from torch import nn

from core.config import ModelConfig

DECODERS = {"unet": smp.Unet, "fpn": smp.FPN, "deeplabv3plus": smp.DeepLabV3Plus}
# Every encoder here downsamples by 32; inputs must be a multiple of it.
INPUT_MULTIPLE = 32


def build_segmentation_model(config: ModelConfig, in_channels: int, num_classes: int) -> nn.Module:
    # Random initialisation: pretrained weights would be a download, which this system never needs.
    return DECODERS[config.decoder](
        encoder_name=config.encoder, encoder_weights=None, in_channels=in_channels, classes=num_classes
    )
