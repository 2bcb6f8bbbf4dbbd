"""Losses of Gatys et al., scale-normalised so one set of weights works across image sizes and networks.

Style: each layer's squared Gram error divided by the target Gram's squared norm. Content: squared feature
error divided by the target features' squared norm. Both are then independent of feature magnitude, which
also lets a randomly initialised VGG19 (used in tests) stylise visibly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import torch

if TYPE_CHECKING:
    from .network import FramedMap


LOW_PRECISION = (torch.bfloat16, torch.float16)
# Positions × channels of a bf16/fp16 map multiplied at a time by ``_LowPrecisionGram``: 512 KB, so the chunk's copy
# stays in a core's cache for its product, and each chunk's sum is rounded to bf16 before the fp32 total.
CHUNK_ELEMENTS = 1 << 18
# The precision of ``_LowPrecisionGram``'s products: bf16 has fp32's range, but fp16's (65504 at most) would
# overflow a chunk's sum of squared activations and flush the Gram's gradient to zero, so fp16 maps (a GPU's) are
# raised to fp32 for their products.
_PRODUCT_DTYPE = {torch.bfloat16: torch.bfloat16, torch.float16: torch.float32}


def gram(features: "torch.Tensor | FramedMap") -> torch.Tensor:
    """N×C×H×W → N×C×C Gram matrices averaged over positions, accumulated in fp32. A
    :class:`~nst_engine.network.FramedMap` gives the Gram of its crop, computed from the whole channels_last map
    without copying the crop (``_FramedGram`` in fp32, ``_LowPrecisionGram`` in bf16/fp16)."""
    if not isinstance(features, torch.Tensor):
        full, rows, cols = features
        if full.is_contiguous(memory_format=torch.channels_last):
            if full.dtype in (torch.float32, torch.float64):
                return _FramedGram.apply(full, rows, cols)
            if full.dtype in LOW_PRECISION:
                return _LowPrecisionGram.apply(full, rows, cols)
        features = features.crop
    if features.dtype in LOW_PRECISION and features.stride(1) == 1:
        return _LowPrecisionGram.apply(features, (0, features.shape[2]), (0, features.shape[3]))
    return _Gram.apply(features)


class _Gram(torch.autograd.Function):
    """The Gram matrix, keeping only the feature map itself for the backward pass.

    Autograd's own matmul would keep its flattened input, and for a map cropped out of its border frame
    (nst_engine/network.py) or in bf16/fp16 that input is a copy: about 100 MB more peak memory at 512 px on the
    CPU. Flattening again in the backward pass costs one map's copy at a time instead.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, features: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(features)
        flat = _flat(features)
        return torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[2]

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (features,) = ctx.saved_tensors
        n, c, h, w = features.shape
        flat = _flat(features)
        symmetric = (grad + grad.transpose(1, 2)) / (h * w)
        if features.stride(1) == 1:  # channels_last: the gradient in the map's own layout
            grad_features = torch.bmm(flat.transpose(1, 2), symmetric).view(n, h, w, c).permute(0, 3, 1, 2)
        else:
            grad_features = torch.bmm(symmetric, flat).view(n, c, h, w)
        return grad_features.to(features.dtype)


class _FramedGram(torch.autograd.Function):
    """The Gram of the rows ``rows`` and columns ``cols`` of a channels_last fp32 map, from the whole map.

    Forward: the whole map's Gram (its positions flattened as a view) less the frame strips' Grams (small
    copies), so the crop is never copied. Backward: the whole map's gradient from one product, the strips then
    zeroed, instead of a crop's gradient that autograd would copy into a zero-filled full-size map. The
    whole map's Gram costs the frame's share more FLOPs (7 % at 512×384), less than the copies it saves
    (benchmarks/speed_floor.py)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, full: torch.Tensor, rows: tuple[int, int],
                cols: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(full)
        ctx.box = rows, cols
        n, c, h, w = full.shape
        positions = full.permute(0, 2, 3, 1)  # N×H×W×C, a view of the channels_last map
        flat = positions.reshape(n, h * w, c)
        result = torch.bmm(flat.transpose(1, 2), flat)
        for strip in _strips(positions, rows, cols):
            strip = strip.reshape(n, -1, c)
            result.baddbmm_(strip.transpose(1, 2), strip, alpha=-1)
        return result / ((rows[1] - rows[0]) * (cols[1] - cols[0]))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple:
        full, rows, cols, symmetric = _saved_box(ctx, grad)
        n, c, h, w = full.shape
        grad_positions = torch.bmm(full.permute(0, 2, 3, 1).reshape(n, h * w, c), symmetric).view(n, h, w, c)
        for strip in _strips(grad_positions, rows, cols):
            strip.zero_()
        return grad_positions.permute(0, 3, 1, 2), None, None


class _LowPrecisionGram(torch.autograd.Function):
    """The fp32 Gram of the rows ``rows`` and columns ``cols`` of a bf16/fp16 map whose channels are innermost.

    torch 2.14 has no CPU product of bf16 matrices with an fp32 result (``bmm(..., out_dtype=)`` is CUDA-only), and
    one bf16 product of the whole map would round the Gram's sum to 3 digits. So the crop goes a few rows at a time
    (``CHUNK_ELEMENTS``): each chunk's product in the map's precision (oneDNN accumulates it in fp32 and rounds
    only the chunk's sum), added into an fp32 Gram, so rounding errors of the chunks average out: about 5e-4 of
    the Gram's norm (fp32 chunks: 3e-7), at less than half their time, with no full-size copy and no copy of the
    crop. On a GPU, where each chunk would be a launch, the crop is copied and multiplied in one product with an
    fp32 result. The backward pass is one product of the whole map in its precision, whose frame strips are then zeroed
    (no zero-filled map, no cast back). fp16 maps are multiplied in fp32 (``_PRODUCT_DTYPE``). What this costs
    the result is measured in benchmarks/precision.py."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, full: torch.Tensor, rows: tuple[int, int],
                cols: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(full)
        ctx.box = rows, cols
        n, c = full.shape[:2]
        if full.is_cuda:
            # cuBLAS multiplies bf16/fp16 into an fp32 result (bmm's out_dtype, CUDA only in torch 2.14): the whole
            # crop in one product accumulated in fp32, instead of a hundred chunks' launches at 512 px.
            crop = full.permute(0, 2, 3, 1)[:, rows[0]:rows[1], cols[0]:cols[1]].reshape(n, -1, c)
            result = torch.bmm(crop.transpose(1, 2), crop, out_dtype=torch.float32)
        else:
            result = full.new_zeros((n, c, c), dtype=torch.float32)
            for chunk in _chunks(full, rows, cols):
                chunk = chunk.to(_PRODUCT_DTYPE[full.dtype])
                result.add_(torch.bmm(chunk.transpose(1, 2), chunk))
        return result / ((rows[1] - rows[0]) * (cols[1] - cols[0]))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple:
        full, rows, cols, symmetric = _saved_box(ctx, grad)
        n, c, h, w = full.shape
        # One product over the whole map in its own precision (accumulated in fp32 by oneDNN): the gradient goes
        # on in that precision to the convolutions' backward anyway, so rounding the C×C factor to it costs
        # nothing measurable (benchmarks/precision.py) and saves the raised chunks and their fp32 products.
        product = _PRODUCT_DTYPE[full.dtype]
        positions = full.permute(0, 2, 3, 1).reshape(n, h * w, c).to(product)
        grad_positions = torch.bmm(positions, symmetric.to(product)).view(n, h, w, c).to(full.dtype)
        for strip in _strips(grad_positions, rows, cols):
            strip.zero_()
        return grad_positions.permute(0, 3, 1, 2), None, None


def _saved_box(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple:
    """A box Gram's saved map and box, and its gradient made symmetric and averaged over the box's positions."""
    (full,) = ctx.saved_tensors
    rows, cols = ctx.box
    return full, rows, cols, (grad + grad.transpose(1, 2)) / ((rows[1] - rows[0]) * (cols[1] - cols[0]))


def _chunks(full: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> Iterator[torch.Tensor]:
    """The crop's positions a few rows at a time, each chunk a contiguous N×(rows·columns)×C copy."""
    n, c = full.shape[:2]
    positions = full.permute(0, 2, 3, 1)
    step = max(1, CHUNK_ELEMENTS // ((cols[1] - cols[0]) * c))
    for top in range(rows[0], rows[1], step):
        yield positions[:, top:min(top + step, rows[1]), cols[0]:cols[1]].contiguous().view(n, -1, c)


def _strips(positions: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> list[torch.Tensor]:
    """The non-empty parts of an N×H×W×C map outside ``rows`` × ``cols``: above, below, left, right."""
    top, bottom = rows
    left, right = cols
    strips = [positions[:, :top], positions[:, bottom:], positions[:, top:bottom, :left],
              positions[:, top:bottom, right:]]
    return [strip for strip in strips if strip.numel()]


def _flat(features: torch.Tensor) -> torch.Tensor:
    """N×C×(H·W), positions outermost for a channels_last map (a view of a whole map; a crop's copy is made in
    memory order), bf16/fp16 raised to fp32: products in low precision would lose the small entries, and the Gram
    is a few percent of an iteration's FLOPs (benchmarks/README.md)."""
    n, c, h, w = features.shape
    if features.dtype in (torch.bfloat16, torch.float16):
        features = features.float()
    if features.stride(1) == 1:
        return features.permute(0, 2, 3, 1).reshape(n, h * w, c).transpose(1, 2)
    return features.reshape(n, c, h * w)


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


def edge_profile(image: torch.Tensor, depth: int) -> torch.Tensor:
    """How each of the ``depth`` outermost rows of every side departs from the strip of ``depth`` rows inside
    them: per image, colour channel, side (top, bottom, left, right) and row, the row's mean along the side less
    the strip's mean (shape N×C×4×depth, outermost row first)."""
    if not depth:
        return image.new_zeros(*image.shape[:2], 4, 0)
    strip = 2 * depth
    sides = (image[..., :strip, :].mean(-1), image[..., -strip:, :].mean(-1).flip(-1),
             image[..., :, :strip].mean(-2), image[..., :, -strip:].mean(-2).flip(-1))
    rows = torch.stack(sides, dim=2)  # N×C×4×strip
    return rows[..., :depth] - rows[..., depth:].mean(-1, keepdim=True)


def edge_loss(image: torch.Tensor, target: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Per-image mean squared excess, past ``tolerance``, of the image's :func:`edge_profile` over the content's
    (``target``; shape N): a band along a side, rows lighter or darker than the picture inside them by more than
    the content's are, costs; texture that varies along the side averages out of a row's mean, and the row
    means' own wobble of a textured picture (about ``tolerance``) is left alone."""
    if not target.shape[-1]:
        return image.new_zeros(image.shape[0], dtype=torch.float32)
    excess = (edge_profile(image.float(), target.shape[-1]) - target).abs() - tolerance
    return excess.clamp_min(0).pow(2).mean(dim=(1, 2, 3))
