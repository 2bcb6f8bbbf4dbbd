"""VGG19 feature encoder with named layers, built from a torchvision-format ``state_dict``.

Only the layers up to the deepest one a request uses are built, so no time is spent past relu5_1.
"""

from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import WeightsError
from .layers import LAYER_INDEX, VGG19_CONFIG, frame_for
from .packed import PackedWeights, available as packed_available

# The picture's border. Zero padding (torchvision's choice) makes every border look to the network like a frame of
# the mean colour, and the optimiser paints a band along it. So the input gets a mirrored frame of FRAME px (0:
# none) before the network, and every feature map is cropped back to the positions that see picture: zero padding
# then meets the frame's edge, and the picture's border looks like more picture. Measured in benchmarks/quality.py
# (docs/quality.md): over ten cases at 256–1024 px on a GPU the border jump fell from 2.2× to 1.7× the picture's own
# ring-to-ring jump, for the frame's pixels (1.15× at 256×192, 1.04× at 1024×768) on a CPU and no measurable time on
# the GPU. Per-convolution reflected or replicated padding (PADDING_MODE; maps under SMALL_MAP px keep zeros) did no
# better there; they stay for that comparison.
PADDING_MODE = "zeros"
SMALL_MAP = 8
# FRAME and MIN_FRAMED are in nst_engine/layers.py (torch-free: the cost model sizes jobs with them).
# The deep layers reach past an 8-px frame: a conv sees one position of zero padding on each side, so from the
# frame's outer edge zeros reach about 40 px in at relu4_1 and 80 px at relu5_1. With VGG's kernels, which are not
# mirror-symmetric, that reach pushes one side more than its opposite: on stationary noise the style gradient's
# outer ring stood out 2-5x more at the top and left than at the bottom and right, and flipping every kernel
# upside down (or left-right) moved that excess to the bottom (right) (benchmarks/quality.py --only asymmetry,
# docs/quality.md). Dropping this many more positions along each side of the maps at stride DEEP_STRIDE and
# coarser (relu4_*, relu5_1) leaves the losses only positions whose nearest zeros are a further 8-16 px away; it
# cut the largest side 2-4x on that probe and costs nothing (the maps get smaller).
DEEP_MARGIN = 1
DEEP_STRIDE = 8
# Layers (torchvision indices below this) that run in fp32 even under bf16/fp16 autocast; 0: all in autocast's
# precision. Set by benchmarks/precision.py to find which part of the network costs bf16 its quality.
FP32_LAYERS = 0
# torchvision's VGG19 expects ImageNet-normalised input.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_shapes() -> dict[int, tuple[int, int]]:
    """torchvision feature index of each conv → (out_channels, in_channels)."""
    shapes, index, channels = {}, 0, 3
    for item in VGG19_CONFIG:
        if item == "M":
            index += 1
        else:
            shapes[index] = (item, channels)
            index, channels = index + 2, item
    return shapes


CONV_SHAPES = _conv_shapes()
POOL_INDICES = frozenset(index for name, index in LAYER_INDEX.items() if name.startswith("pool"))


def features_state(state: Mapping[str, torch.Tensor]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Pick the conv weights out of a full-model or features-only torchvision state_dict.

    Accepts keys ``features.N.weight`` (``vgg19().state_dict()``) or ``N.weight`` (``vgg19().features``).
    """
    convs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for index, (out_ch, in_ch) in CONV_SHAPES.items():
        for prefix in ("features.", ""):
            weight, bias = state.get(f"{prefix}{index}.weight"), state.get(f"{prefix}{index}.bias")
            if weight is not None and bias is not None:
                if tuple(weight.shape) != (out_ch, in_ch, 3, 3) or tuple(bias.shape) != (out_ch,):
                    raise WeightsError(f"The weights file is not VGG19: layer {index} has shape "
                                       f"{tuple(weight.shape)}, expected {(out_ch, in_ch, 3, 3)}.")
                convs[index] = (weight, bias)
                break
    if 0 not in convs:
        raise WeightsError("The weights file is not a torchvision VGG19 state_dict (no features.0.weight).")
    return convs


class BorderConv(nn.Conv2d):
    """A 3×3 convolution padded by ``PADDING_MODE``, except maps narrower than ``SMALL_MAP`` pixels (the deep
    layers of tiny images): reflecting those repeats the whole map, which measurably loosened the content at
    64 px (tests/engine/test_transfer.py), so they keep zero padding.

    With ``packed`` set (CPU encoders), zero-padded channels_last fp32/bf16 inputs go through weights kept in
    oneDNN's layout (nst_engine/packed.py) instead of being reordered on every call."""

    packed: PackedWeights | None = None

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        output = self._packed(input, relu=False)
        return output if output is not None else self._plain(input, weight, bias)

    def with_relu(self, input: torch.Tensor) -> torch.Tensor:
        """ReLU(conv(input)): in one pass where the weights are packed, else the conv then an in-place ReLU (the
        conv's output is not needed for its backward)."""
        output = self._packed(input, relu=True)
        return output if output is not None else torch.relu_(self(input))

    def _packed(self, input: torch.Tensor, relu: bool) -> torch.Tensor | None:
        if self.packed is not None and self._zero_padded(input) and _packable(input):
            return self.packed(input, relu)
        return None

    def _plain(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self._zero_padded(input):
            return F.conv2d(input, weight, bias, padding=1)
        return F.conv2d(F.pad(input, (1, 1, 1, 1), mode=self.padding_mode), weight, bias)

    def _zero_padded(self, input: torch.Tensor) -> bool:
        return self.padding_mode == "zeros" or min(input.shape[-2:]) < SMALL_MAP


class FramedMap(NamedTuple):
    """A feature map with its frame, and the rows and columns of it (half-open ranges) that the losses see.

    The hot loop takes these instead of cropped views so the Gram can work on the whole map and hand back a
    whole-map gradient: a crop's view costs a copy to flatten it and, in the backward pass, a zero-filled map
    of the full size to put its gradient in (nst_engine/losses.py)."""

    full: torch.Tensor
    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def crop(self) -> torch.Tensor:
        return self.full[..., self.rows[0]:self.rows[1], self.cols[0]:self.cols[1]]


def _packable(x: torch.Tensor) -> bool:
    """A CPU channels_last input the packed convolution runs in fp32 or (under autocast) bf16."""
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    return (x.device.type == "cpu" and dtype in (torch.float32, torch.bfloat16)
            and x.is_contiguous(memory_format=torch.channels_last))


class VGGEncoder(nn.Module):
    """VGG19 ``features`` truncated after ``last_layer``; returns the activations of the requested layers."""

    def __init__(self, convs: Mapping[int, tuple[torch.Tensor, torch.Tensor]], last_layer: str,
                 pooling: str = "avg") -> None:
        super().__init__()
        last = LAYER_INDEX[last_layer]
        layers: list[nn.Module] = []
        for index in range(last + 1):
            if index in CONV_SHAPES:
                if index not in convs:
                    raise WeightsError(f"The weights file stops before layer {last_layer}; it is incomplete.")
                out_ch, in_ch = CONV_SHAPES[index]
                conv = BorderConv(in_ch, out_ch, 3, padding=1, padding_mode=PADDING_MODE)
                weight, bias = convs[index]
                with torch.no_grad():
                    conv.weight.copy_(weight)
                    conv.bias.copy_(bias)
                layers.append(conv)
            elif index in POOL_INDICES:
                layers.append(nn.AvgPool2d(2, 2, ceil_mode=True) if pooling == "avg" else nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers.append(nn.ReLU(inplace=False))
        self.layers = nn.Sequential(*layers)
        self.names = {index: name for name, index in LAYER_INDEX.items() if index <= last}
        self.strides = {index: 2 ** sum(pool <= index for pool in POOL_INDICES) for index in self.names}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def pack_weights(self) -> "VGGEncoder":
        """Keep the convolutions' weights in oneDNN's layout (CPU only; see nst_engine/packed.py)."""
        if packed_available():
            for layer in self.layers:
                if isinstance(layer, BorderConv):
                    layer.packed = PackedWeights(layer.weight, layer.bias)
        return self

    def forward(self, image: torch.Tensor, wanted: Iterable[str], frame: int | None = None,
                framed: bool = False) -> dict[str, torch.Tensor] | dict[str, FramedMap]:
        """``image`` is N×3×H×W RGB in 0..1; returns {layer name: activation} for the ``wanted`` layers. ``frame``:
        the mirrored frame's width (by default :func:`frame_for` the image's size; a job passes its scale's, so
        its style images are seen as its picture is). ``framed``: each activation as a :class:`FramedMap` (the
        whole map and the part of it a crop would be) instead of the crop."""
        wanted = set(wanted)
        deepest = max(LAYER_INDEX[name] for name in wanted)
        out: dict = {}
        x = (image - self.mean) / self.std
        frame = frame_for(image.shape[-2:]) if frame is None else frame
        if frame >= min(image.shape[-2:]):
            frame = 0  # a mirror needs more picture than frame (a tiny style image)
        if frame:
            x = F.pad(x, (frame, frame, frame, frame), mode="reflect")
        fused = False
        for index, layer in enumerate(self.layers):
            if fused:  # this ReLU ran with the conv before it
                fused = False
            elif isinstance(layer, BorderConv) and index >= FP32_LAYERS and self.names.get(index) not in wanted:
                # With its ReLU: the conv's output is not needed for its backward, so it is never kept apart
                # (this halves the memory autograd keeps, peak RSS at 512 px), and packed it is one pass over the
                # map. Not when the conv's output itself is asked for.
                x, fused = layer.with_relu(x), True
            elif index < FP32_LAYERS:
                with torch.autocast(x.device.type, enabled=False):
                    x = layer(x.float())
            else:
                x = layer(x)
            name = self.names.get(index)
            if name in wanted:
                rows, cols = (self._box(self.strides[index], frame, image.shape[-2:]) if frame
                              else ((0, x.shape[-2]), (0, x.shape[-1])))
                out[name] = FramedMap(x, rows, cols) if framed else x[..., rows[0]:rows[1], cols[0]:cols[1]]
            if index >= deepest:
                break
        return out

    @staticmethod
    def _box(stride: int, frame: int, size: Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """The rows and columns of a framed feature map that see any of the picture (``size``: its height,
        width), less ``DEEP_MARGIN`` along each side at ``DEEP_STRIDE`` and coarser (as long as two rows and
        columns remain)."""
        start, ends = frame // stride, [-(-(frame + side) // stride) for side in size]
        margin = DEEP_MARGIN if stride >= DEEP_STRIDE and min(ends) - start > 2 * DEEP_MARGIN + 1 else 0
        return (start + margin, ends[0] - margin), (start + margin, ends[1] - margin)
