"""Names of torchvision VGG19 ``features`` layers (conv1_1 … relu5_4) and their indices. Torch-free."""

from __future__ import annotations

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
