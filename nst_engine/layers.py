"""Names of torchvision VGG19 ``features`` layers (conv1_1 … relu5_4), their indices, and the mirrored frame a
picture gets before the network (see nst_engine/network.py for why). Torch-free, for the cost model too."""

from __future__ import annotations

from typing import Sequence

# Channels per conv in each of VGG19's five blocks; "M" is a pooling layer.
VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _layer_names() -> dict[str, int]:
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for item in VGG19_CONFIG:
        if item == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return names


LAYER_INDEX: dict[str, int] = _layer_names()
# Features kept in the weights cache: everything up to conv5_1 (torchvision index 28), enough for relu5_1.
CACHE_LAST_INDEX = LAYER_INDEX["conv5_1"]

# The mirrored frame, in px, around every picture (and its style images) before the network; 0: none.
FRAME = 8
# Scales with a shorter side than this go unframed, their style images too: on the 64×43 px pictures of
# tests/engine/test_transfer.py the frame loosened the content (luminance correlation 0.79 → 0.58), at 128 px it did
# not. 48 frames the 64×48 first scale of a 128 px job: a band painted there survives the finer scales (at 64 the
# worst side of 128 px jobs was 0.11-0.15 for cubist, embers, pointillist and waves, one side each; framed, those
# sides fell to 0.02-0.09; benchmarks/quality.py --only border, docs/quality.md).
MIN_FRAMED = 48


def frame_for(size: Sequence[int]) -> int:
    """The mirrored frame for a picture of this size (either order): ``FRAME``, or 0 under ``MIN_FRAMED``."""
    return FRAME if min(size) >= MIN_FRAMED else 0
