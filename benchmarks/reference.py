"""The classic recipe of Gatys et al. (2016), as a baseline for ``benchmarks/engine.py``.

Deliberately plain (it runs on whatever device its network and images are on): one scale, L-BFGS (one objective evaluation per iteration, no line search), fp32, NCHW,
max pooling, torchvision's VGG19 ``features`` cut after relu5_1. It shares nothing with ``nst_engine`` except
the weights file, so it also serves as an independent network for the common quality evaluator.

The objective (also the evaluator's score): Gram error on relu1_1 … relu5_1 plus feature error on relu4_2,
each term divided by its target's squared norm once (fixed weights for a given content/style pair), so
``content_weight`` and ``style_weight`` mean the same as in nst_engine's options.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models import vgg19

# torchvision ``features`` indices of the classic layers.
STYLE_INDICES = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
CONTENT_INDEX = 22  # relu4_2
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_classic_vgg(weights: str | Path) -> torch.nn.Sequential:
    """torchvision VGG19 ``features[:30]`` (max pooling, up to relu5_1) with the file's conv weights."""
    network = vgg19(weights=None).features[:30]
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = {key.removeprefix("features."): value for key, value in state.items()
             if key.startswith("features.") and int(key.split(".")[1]) < 30}
    network.load_state_dict(state)
    return network.eval().requires_grad_(False)


def image_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def tensor_image(tensor: torch.Tensor) -> Image.Image:
    array = tensor.detach()[0].cpu().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


def features(network: torch.nn.Sequential, image: torch.Tensor) -> dict[int, torch.Tensor]:
    wanted = {*STYLE_INDICES.values(), CONTENT_INDEX}
    out, x = {}, (image - MEAN.to(image.device)) / STD.to(image.device)
    for index, layer in enumerate(network):
        x = layer(x)
        if index in wanted:
            out[index] = x
    return out


def gram(activation: torch.Tensor) -> torch.Tensor:
    _, channels, height, width = activation.shape
    flat = activation.reshape(channels, height * width)
    return flat @ flat.T / (height * width)


@dataclass
class GatysObjective:
    """The classic objective for one content/style pair at one output size; ``score`` rates any image."""

    network: torch.nn.Sequential
    content: torch.Tensor
    style: torch.Tensor
    content_weight: float
    style_weight: float
    content_target: torch.Tensor = field(init=False)
    style_targets: dict[int, torch.Tensor] = field(init=False)

    def __post_init__(self) -> None:
        with torch.no_grad():
            self.content_target = features(self.network, self.content)[CONTENT_INDEX]
            style = features(self.network, self.style)
            self.style_targets = {index: gram(style[index]) for index in STYLE_INDICES.values()}
        self.content_norm = float(self.content_target.pow(2).sum())
        self.style_norms = {index: float(target.pow(2).sum()) for index, target in self.style_targets.items()}

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        current = features(self.network, image)
        content = (current[CONTENT_INDEX] - self.content_target).pow(2).sum() / self.content_norm
        style = sum((gram(current[index]) - target).pow(2).sum() / self.style_norms[index]
                    for index, target in self.style_targets.items()) / len(self.style_targets)
        return self.content_weight * content + self.style_weight * style

    @torch.no_grad()
    def score(self, image: Image.Image) -> float:
        """Lower is better; ``image`` is resized to this objective's size if needed."""
        height, width = self.content.shape[-2:]
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        return float(self(image_tensor(image).to(self.content.device)))


@dataclass
class ReferenceRun:
    image: Image.Image
    seconds_per_iteration: list[float]
    checkpoints: list[tuple[int, float, float]]  # (iteration, optimisation seconds so far, score)


def run_reference(objective: GatysObjective, iterations: int, checkpoint_every: int = 0) -> ReferenceRun:
    """L-BFGS from the content image; scoring at checkpoints is excluded from the timings.

    Pixels are not clamped during the optimisation (as in the well-known Torch implementation; clamping after
    each step corrupts L-BFGS's curvature pairs: a first run that clamped reached 0.44 after 50 iterations
    and then oscillated up to 1.48), only when an image is produced.
    """
    image = objective.content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=100)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective(image)
        loss.backward()
        return loss

    times, checkpoints, spent = [], [], 0.0
    for iteration in range(1, iterations + 1):
        started = time.perf_counter()
        optimizer.step(closure)
        times.append(time.perf_counter() - started)
        spent += times[-1]
        if checkpoint_every and (iteration % checkpoint_every == 0 or iteration == iterations):
            checkpoints.append((iteration, spent, objective.score(tensor_image(image))))
    return ReferenceRun(tensor_image(image), times, checkpoints)
