"""Explanations of a prediction: LSM maps and selected tokens, Grad-CAM per head and class, attention
rollout, and image-sized overlays. Qt-free; pytorch-grad-cam is imported only when a CAM is made."""

from engine.explain.gradcam import (
    HEAD_OUTPUTS,
    HeadClassTarget,
    HeadLogits,
    TokenGridReshape,
    default_target_layer,
    grad_cam,
)
from engine.explain.lsm import Box, lsm_map, normalize_map, selected_boxes, token_box
from engine.explain.overlay import COLORMAPS, blend, draw_boxes, lsm_overlay_image, overlay
from engine.explain.rollout import attention_rollout, collect_attentions, rollout_from_attentions

__all__ = [
    "COLORMAPS",
    "HEAD_OUTPUTS",
    "Box",
    "HeadClassTarget",
    "HeadLogits",
    "TokenGridReshape",
    "attention_rollout",
    "blend",
    "collect_attentions",
    "default_target_layer",
    "draw_boxes",
    "grad_cam",
    "lsm_map",
    "lsm_overlay_image",
    "normalize_map",
    "overlay",
    "rollout_from_attentions",
    "selected_boxes",
    "token_box",
]
