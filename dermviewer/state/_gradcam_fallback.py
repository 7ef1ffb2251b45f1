"""Stand-in Grad-CAM (Selvaraju et al. 2017) on the shared backbone's patch tokens, used only until
``engine.explain`` provides one: gradients of one head's class logit, averaged over tokens, weight the
token activations; the ReLU of the sum is the map on the token grid.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.preprocess import preprocess

__all__ = ["token_gradcam"]


def token_gradcam(model: torch.nn.Module, preprocess_cfg: object, rgb: np.ndarray, head: str, index: int,
                  grid: tuple[int, int]) -> np.ndarray:
    x = torch.from_numpy(preprocess(rgb, preprocess_cfg)[None])  # type: ignore[arg-type]
    p = next(model.parameters())
    x = x.to(p.device).requires_grad_(True)
    acts: list[torch.Tensor] = []

    def hook(_m: torch.nn.Module, _i: object, out: object) -> None:
        t = out[0] if isinstance(out, tuple) else out
        assert isinstance(t, torch.Tensor)
        t.retain_grad()
        acts.append(t)

    handle = model.backbone.register_forward_hook(hook)  # type: ignore[union-attr]
    try:
        with torch.enable_grad():
            out = model(x)
            key = "disease_fused" if head == "disease" else head
            model.zero_grad(set_to_none=True)
            out[key][0, index].backward()
    finally:
        handle.remove()
    tokens = acts[0]
    n = grid[0] * grid[1]
    a = tokens[0, -n:].detach()
    g = tokens.grad[0, -n:] if tokens.grad is not None else torch.zeros_like(a)
    cam = torch.relu((a * g.mean(0, keepdim=True)).sum(-1)).reshape(grid).float().cpu().numpy()
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).astype(np.float32)
