"""Losses of Gatys et al., scale-normalised so one set of weights works across image sizes and networks.

Style: each layer's squared Gram error divided by the target Gram's squared norm. Content: squared feature
error divided by the target features' squared norm. Both are then independent of feature magnitude, which
also lets a randomly initialised VGG19 (used in tests) stylise visibly.
"""

from __future__ import annotations

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → N×C×C Gram matrices averaged over positions, accumulated in fp32."""
    n, c, h, w = features.shape
    if features.dtype in (torch.bfloat16, torch.float16):
        # Products in low precision would lose the small entries; an fp32 matmul keeps them. The Gram is a few
        # percent of an iteration's FLOPs (benchmarks/README.md), so exactness costs little.
        features = features.float()
    if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
        flat = features.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view in NHWC: no copy
        return torch.bmm(flat.transpose(1, 2), flat) / (h * w)
    flat = features.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


def style_loss(current_gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Per-image normalised Gram error (shape N)."""
    error = (current_gram - target_gram).pow(2).sum(dim=(1, 2))
    return error / target_gram.pow(2).sum(dim=(1, 2)).clamp_min(1e-12)


def content_loss(current: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image normalised feature error (shape N)."""
    current, target = current.float(), target.float()
    error = (current - target).pow(2).sum(dim=(1, 2, 3))
    return error / target.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-12)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared difference between neighbouring pixels (shape N); size-independent."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean(dim=(1, 2, 3))
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean(dim=(1, 2, 3))
    return dx + dy
