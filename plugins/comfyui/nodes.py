"""The "Neural Style Transfer" node: a thin adapter from ComfyUI's node API to nst_engine.

Inputs are generated from ``nst_engine.options.option_specs`` and validated by ``StylizeOptions.from_mapping``,
so the node never restates a default or a bound. IMAGE tensors are BHWC float32 in 0..1: every content image of
a batch is stylised (one output each), and a style batch is several styles blended by ``style_weights``. With
``temporal`` on, the content batch is the frames of one animation, stylised coherently
(``Engine.stylize_animation``: each frame starts from the previous result moved along the motion, and
``temporal_weight`` holds it there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import comfy.model_management
import comfy.utils
import folder_paths
from nst_engine.cost import animation_iterations
from nst_engine.errors import NSTError
from nst_engine.options import OptionSpec, StylizeOptions, option_specs

WEIGHTS_FOLDER = "vgg19"  # models/vgg19/: an extra place for a torchvision VGG19 state_dict (.pth)
PREVIEWS_PER_RUN = 20
PREVIEW_FORMAT = "JPEG"

_WIDGETS = {int: "INT", float: "FLOAT"}


def _register_weights_folder() -> None:
    folder_paths.add_model_folder_path(WEIGHTS_FOLDER, os.path.join(folder_paths.models_dir, WEIGHTS_FOLDER))


def comfy_weights() -> str | None:
    """The first ``.pth`` in ComfyUI's ``models/vgg19`` folders, or None to leave it to the engine's cache."""
    for folder in folder_paths.get_folder_paths(WEIGHTS_FOLDER):
        candidates = sorted(Path(folder).glob("*.pth")) if os.path.isdir(folder) else []
        if candidates:
            return str(candidates[0])
    return None


def input_spec(spec: OptionSpec) -> tuple:
    """One ComfyUI input declaration from one engine option: widget type, default, bounds and tooltip."""
    if spec.choices:
        return (list(spec.choices), {"default": spec.default, "tooltip": spec.help})
    if spec.type is tuple:
        return ("STRING", {"default": ",".join(map(str, spec.default)), "tooltip": f"{spec.help}, comma-separated"})
    widget = _WIDGETS[spec.type]
    extra: dict[str, Any] = {"default": spec.default, "min": spec.low, "max": spec.high, "tooltip": spec.help}
    extra["step"] = 1 if spec.type is int else 0.01
    return (widget, extra)


def tensor_to_images(batch: torch.Tensor) -> list[Image.Image]:
    """BHWC float 0..1 (ComfyUI's IMAGE) → RGB PIL images, one per batch entry."""
    if batch.ndim != 4 or batch.shape[-1] not in (3, 4):
        raise NSTError(f"expected an IMAGE tensor shaped [batch, height, width, channels], got {list(batch.shape)}")
    pixels = batch[..., :3].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return [Image.fromarray(frame, "RGB") for frame in pixels]


def images_to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB PIL images of one size → BHWC float32 0..1."""
    return torch.from_numpy(np.stack([np.asarray(image.convert("RGB")) for image in images])).float().div(255)


class _Interrupts:
    """Maps ComfyUI's interrupt check onto the engine's ``should_stop``, remembering the exception to re-raise.

    The engine checks ``should_stop`` before every iteration and returns cleanly; the node then raises
    ComfyUI's own exception so the queue stops the prompt the way ComfyUI expects.
    """

    def __init__(self) -> None:
        self.raised: BaseException | None = None

    def __call__(self) -> bool:
        try:
            comfy.model_management.throw_exception_if_processing_interrupted()
        except comfy.model_management.InterruptProcessingException as interrupt:
            self.raised = interrupt
            return True
        return False


class NeuralStyleTransfer:
    """Gatys neural style transfer on VGG19 features (nst-bot's engine)."""

    CATEGORY = "image/style transfer"
    FUNCTION = "stylize"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    DESCRIPTION = ("Repaints the content image(s) with the texture of the style image(s). A batch of styles is "
                   "blended with style_weights; a batch of contents gives a batch of results.")

    _engines: dict[str | None, Any] = {}

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple]]:
        required: dict[str, tuple] = {
            "content": ("IMAGE", {"tooltip": "image(s) to repaint"}),
            "style": ("IMAGE", {"tooltip": "style image(s); several are blended"}),
        }
        required.update((spec.name, input_spec(spec)) for spec in option_specs(user_only=True))
        temporal = ("BOOLEAN", {"default": False, "tooltip": "the content batch is the frames of one animation: "
                                "stylise them coherently, so the style stays put where nothing moves"})
        return {"required": required, "optional": {"temporal": temporal}}

    @classmethod
    def engine(cls) -> Any:
        """One loaded VGG19 per weights file, kept between prompts like ComfyUI keeps its models."""
        from nst_engine.transfer import Engine

        weights = comfy_weights()
        if weights not in cls._engines:
            cls._engines[weights] = Engine(configured=weights)
        return cls._engines[weights]

    def stylize(self, content: torch.Tensor, style: torch.Tensor, temporal: bool = False,
                **values: Any) -> tuple[torch.Tensor]:
        options = StylizeOptions.from_mapping(values)
        options = options.replace(preview_every=max(1, options.iterations // PREVIEWS_PER_RUN))
        contents, styles = tensor_to_images(content), tensor_to_images(style)
        options.normalized_style_weights(len(styles))  # a weight-count mismatch fails before any work
        animated = temporal and len(contents) > 1
        total = animation_iterations(options, len(contents)) if animated else options.iterations * len(contents)
        bar = comfy.utils.ProgressBar(total)
        interrupts = _Interrupts()
        results = []
        # ComfyUI runs nodes under torch.inference_mode(); the optimisation needs autograd, and the network
        # must be loaded outside inference mode too, or its weights could not take part in a backward pass.
        with torch.inference_mode(False), torch.enable_grad():
            engine = self.engine()
            if animated:
                return (images_to_tensor(self._frames(engine, contents, styles, options, bar, interrupts)),)
            for done, image in enumerate(contents):
                offset = done * options.iterations

                def report(progress, offset=offset) -> None:
                    preview = (PREVIEW_FORMAT, progress.preview, options.preview_size) if progress.preview else None
                    bar.update_absolute(offset + progress.iteration, total, preview)

                result = engine.stylize(image, styles, options, on_progress=report, should_stop=interrupts)
                if result.cancelled:
                    raise interrupts.raised or comfy.model_management.InterruptProcessingException()
                results.append(result.image)
        return (images_to_tensor(results),)

    @staticmethod
    def _frames(engine: Any, frames: list[Image.Image], styles: list[Image.Image], options: StylizeOptions,
                bar: Any, interrupts: _Interrupts) -> list[Image.Image]:
        """The content batch stylised as one animation; the bar counts the animation's iterations."""
        from nst_engine.animation import Animation

        def report(progress) -> None:
            preview = (PREVIEW_FORMAT, progress.preview, options.preview_size) if progress.preview else None
            bar.update_absolute(progress.iteration, progress.total, preview)

        result = engine.stylize_animation(Animation(tuple(frames), (0,) * len(frames)), styles, options,
                                          on_progress=report, should_stop=interrupts)
        if result.cancelled:
            raise interrupts.raised or comfy.model_management.InterruptProcessingException()
        return list(result.animation.frames)


_register_weights_folder()

NODE_CLASS_MAPPINGS = {"NeuralStyleTransfer": NeuralStyleTransfer}
NODE_DISPLAY_NAME_MAPPINGS = {"NeuralStyleTransfer": "Neural Style Transfer"}
