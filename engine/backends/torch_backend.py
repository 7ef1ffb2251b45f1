"""The torch backend: the bundle's own module, in inference mode, outputs handed back as numpy."""

from __future__ import annotations

import numpy as np
import torch

from engine.bundle import Bundle

__all__ = ["TorchBackend"]


class TorchBackend:
    name = "torch"

    def __init__(self, bundle: Bundle, device: torch.device) -> None:
        self.device = device
        self.model = bundle.build_model(device)

    @torch.inference_mode()
    def run(self, batch: np.ndarray, context: np.ndarray | None = None) -> dict[str, np.ndarray]:
        x = torch.from_numpy(batch).to(self.device)
        out = self.model(x) if context is None else self.model(x, torch.from_numpy(context).to(self.device))
        return {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in out.items()}
