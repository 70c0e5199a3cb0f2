"""Encoder-decoder segmentation networks from segmentation-models-pytorch, single-device."""
from __future__ import annotations

from torch import nn

DECODERS = {"unet": "Unet", "fpn": "FPN", "deeplabv3plus": "DeepLabV3Plus"}  # model.decoder -> class in smp
# Every encoder here downsamples by 32; inputs must be a multiple of it.
INPUT_MULTIPLE = 32


def build_segmentation_model(decoder: str, encoder: str, in_channels: int, num_classes: int) -> nn.Module:
    # Imported here: smp pulls in timm and torchvision (a second on a small machine), which the
    # driver, planning a run, has no use for.
    import segmentation_models_pytorch as smp

    # Random initialisation: pretrained weights would be a download, which this system never needs.
    return getattr(smp, DECODERS[decoder])(
        encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=num_classes
    )
