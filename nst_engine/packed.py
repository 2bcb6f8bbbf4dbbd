"""3×3 convolutions on the CPU with their weights kept in oneDNN's blocked layout, for the forward and the backward.

Why: through ``F.conv2d`` oneDNN reorders a convolution's weights into its blocked layout on every call, and again
(transposed) for every input-gradient pass: ``ONEDNN_VERBOSE=1`` shows one ``reorder`` before each of the 26
convolutions of an iteration. At the coarse scales of a job that reorder costs about as much as the convolution
itself. Here the weights are reordered once per input shape and precision and kept. The input gradient of a
stride-1, padding-1 convolution is itself a convolution of the output gradient with the weights transposed
(in ↔ out) and flipped, so the backward pass is a second packed convolution rather than oneDNN's backward-data
primitive with its own reorder. The weights are frozen (the engine optimises the image), so no weight gradient.

Used by :class:`nst_engine.network.BorderConv` for channels_last fp32/bf16 CPU inputs (``enabled``); measured in
``benchmarks/speed_floor.py``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

# Shapes (per precision) whose packed weights a convolution keeps: a job sees its scales' shapes and its style
# images' shapes; older ones are dropped first.
KEPT_SHAPES = 8
_PADDING, _STRIDE, _DILATION = [1, 1], [1, 1], [1, 1]


def available() -> bool:
    """oneDNN's pointwise convolution and weight reorder exist in this torch build."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def _pack(weight: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
    """``weight`` reordered into the blocked layout oneDNN picks for inputs of ``input_shape``."""
    return torch._C._nn.mkldnn_reorder_conv2d_weight(weight.to_mkldnn(), _PADDING, _STRIDE, _DILATION, 1,
                                                     list(input_shape))


def _convolve(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, then: str = "none") -> torch.Tensor:
    """The convolution, followed by oneDNN's post-op ``then`` ("none" or "relu") in the same pass."""
    return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, _PADDING, _STRIDE, _DILATION, 1, then, [], "")


class PackedWeights:
    """One 3×3 convolution's weights and bias, packed on first use for each (input shape, dtype)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight, self.bias = weight.detach(), bias.detach()
        self._packed: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = OrderedDict()
        # Precisions oneDNN cannot pack on this CPU (bf16 without AVX-512 or AVX-NE-CONVERT): plain conv2d then.
        self.unsupported: set[torch.dtype] = set()

    def packed_for(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(forward weights, backward weights, bias) for inputs shaped and typed like ``x``."""
        key = (tuple(x.shape), x.dtype)
        if key not in self._packed:
            weight, bias = self.weight.to(x.dtype), self.bias.to(x.dtype)
            grad_shape = (x.shape[0], weight.shape[0], *x.shape[2:])
            transposed = weight.transpose(0, 1).flip(2, 3).contiguous()
            self._packed[key] = (_pack(weight, x.shape), _pack(transposed, torch.Size(grad_shape)), bias)
            if len(self._packed) > KEPT_SHAPES:
                self._packed.popitem(last=False)
        self._packed.move_to_end(key)
        return self._packed[key]

    def __call__(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor | None:
        """The convolution of ``x`` (channels_last, on the CPU; under CPU autocast in its dtype), with ``relu`` its
        ReLU applied in the same pass (no second sweep over the map), or None where oneDNN cannot pack this
        precision here (the caller then runs ``F.conv2d``)."""
        if torch.is_autocast_enabled("cpu"):
            x = x.to(torch.get_autocast_dtype("cpu"))
        if x.dtype in self.unsupported:
            return None
        try:
            forward, backward, bias = self.packed_for(x)
        except RuntimeError:
            self.unsupported.add(x.dtype)
            return None
        return _PackedConv.apply(x, forward, backward, bias, relu)


class _PackedConv(torch.autograd.Function):
    """Forward with the packed weights (and the ReLU as oneDNN's post-op); the input gradient with the packed
    transposed-and-flipped weights, after the ReLU's mask where it was fused."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, forward: torch.Tensor,
                backward: torch.Tensor, bias: torch.Tensor, relu: bool) -> torch.Tensor:
        ctx.backward_weights = backward
        output = _convolve(x, forward, bias, "relu" if relu else "none")
        ctx.relu = relu
        if relu:
            ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple:
        if ctx.relu:
            (output,) = ctx.saved_tensors
            grad = torch.ops.aten.threshold_backward(grad, output, 0)
        grad = grad.contiguous(memory_format=torch.channels_last)
        return _convolve(grad, ctx.backward_weights, None), None, None, None, None
