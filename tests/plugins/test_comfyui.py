"""The ComfyUI node pack, run for real on nst-bot's engine against a stand-in of ComfyUI's modules."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst_engine.errors import NSTError, OptionError, WeightsError
from nst_engine.options import option_specs

from tests.conftest import make_content, make_style
from tests.plugins.plugin_helpers import PLUGINS, ComfyStandIn, style_distance

SMALL = {"size": 48, "iterations": 8, "strength": 1.0, "style_weights": "", "style_scale": 1.0,
         "preserve_colors": "none", "seed": 0}


def as_batch(*images: Image.Image) -> torch.Tensor:
    """PIL images → a ComfyUI IMAGE tensor (BHWC float32 0..1), built independently of the pack's helpers."""
    return torch.stack([torch.tensor(np.asarray(image.convert("RGB")), dtype=torch.float32) / 255
                        for image in images])


def as_image(frame: torch.Tensor) -> Image.Image:
    return Image.fromarray((frame.numpy() * 255).round().astype(np.uint8), "RGB")


@pytest.fixture()
def comfy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_cache: Path):
    """The node pack loaded the way ComfyUI loads a ``custom_nodes/`` folder (a package, by path), importing
    a stand-in of ``comfy.utils``, ``comfy.model_management`` and ``folder_paths``.

    Why a stand-in: ComfyUI is not on PyPI and its repository is too large to fetch here. Everything else is
    real: the engine, its weights loading and the optimisation run in full.
    """
    stand_in = ComfyStandIn(tmp_path / "models")
    for name, module in stand_in.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("nst_bot_comfyui", PLUGINS / "comfyui" / "__init__.py",
                                                  submodule_search_locations=[str(PLUGINS / "comfyui")])
    stand_in.pack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = stand_in.pack
    spec.loader.exec_module(stand_in.pack)
    yield stand_in
    for name in [name for name in sys.modules if name.split(".")[0] == spec.name]:
        del sys.modules[name]


@pytest.fixture()
def node(comfy, vgg_weights, monkeypatch):
    monkeypatch.setenv("NST_WEIGHTS", str(vgg_weights))
    return comfy.pack.NODE_CLASS_MAPPINGS["NeuralStyleTransfer"]()


def test_registration_and_schema_come_from_the_engine_options(comfy):
    pack = comfy.pack
    assert pack.NODE_DISPLAY_NAME_MAPPINGS == {"NeuralStyleTransfer": "Neural Style Transfer"}
    cls = pack.NODE_CLASS_MAPPINGS["NeuralStyleTransfer"]
    assert cls.RETURN_TYPES == ("IMAGE",) and callable(getattr(cls, cls.FUNCTION))
    required = cls.INPUT_TYPES()["required"]
    specs = list(option_specs(user_only=True))
    assert list(required) == ["content", "style", *(spec.name for spec in specs)]
    assert required["content"][0] == required["style"][0] == "IMAGE"
    for spec in specs:
        widget, extra = required[spec.name]
        assert extra["tooltip"].startswith(spec.help)
        if spec.choices:
            assert widget == list(spec.choices) and extra["default"] == spec.default
        elif spec.type is tuple:
            assert widget == "STRING"
        else:
            assert widget == {int: "INT", float: "FLOAT"}[spec.type]
            assert (extra["default"], extra["min"], extra["max"]) == (spec.default, spec.low, spec.high)
    assert required["preserve_colors"][0] == ["none", "luminance", "histogram"]


def test_content_batch_gives_one_styled_bhwc_image_each(node, comfy, vgg_weights):
    content = make_content(96, 64)
    style = make_style()
    contents = as_batch(content, content.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    (out,) = comfy.execute(node, content=contents, style=as_batch(style), **SMALL)
    assert out.dtype == torch.float32 and tuple(out.shape) == (2, 32, 48, 3)  # long side 48, aspect kept
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    first, second = as_image(out[0]), as_image(out[1])
    before = style_distance(vgg_weights, content.resize(first.size), style)
    assert style_distance(vgg_weights, first, style) < 0.8 * before
    assert style_distance(vgg_weights, second, style) < 0.8 * before
    # Each batch entry was stylised from its own content: the flipped input gives a (roughly) flipped output.
    flipped_back = np.asarray(second.transpose(Image.Transpose.FLIP_LEFT_RIGHT), float)
    assert np.abs(flipped_back - np.asarray(first, float)).mean() < np.abs(
        np.asarray(second, float) - np.asarray(first, float)).mean()


def test_style_batch_is_blended_with_weights(node, comfy):
    content, style_a, style_b = as_batch(make_content()), as_batch(make_style(seed=1)), make_style(seed=5)
    style_b = as_batch(style_b.transpose(Image.Transpose.ROTATE_90))
    (only_a,) = comfy.execute(node, content=content, style=style_a, **SMALL)
    both = torch.cat([style_a, style_b])
    (a_weighted_fully,) = comfy.execute(node, content=content, style=both, **{**SMALL, "style_weights": "1,0"})
    (blend,) = comfy.execute(node, content=content, style=both, **{**SMALL, "style_weights": "1,1"})
    assert torch.allclose(only_a, a_weighted_fully, atol=1 / 255)
    assert (blend - only_a).abs().mean() > 2 / 255
    with pytest.raises(OptionError, match="1 style weight"):
        comfy.execute(node, content=content, style=both, **{**SMALL, "style_weights": "1"})


def test_progress_reaches_the_total_with_previews(node, comfy):
    comfy.execute(node, content=as_batch(make_content(), make_content()), style=as_batch(make_style()), **SMALL)
    total = 2 * SMALL["iterations"]
    assert comfy.bars == [total]
    values = [value for value, _, _ in comfy.updates]
    assert values == list(range(1, total + 1)) and {t for _, t, _ in comfy.updates} == {total}
    previews = [preview for _, _, preview in comfy.updates if preview is not None]
    assert len(previews) >= 2
    kind, image, max_size = previews[-1]
    assert kind == "JPEG" and isinstance(image, Image.Image) and max(image.size) <= max_size


def test_interrupt_stops_within_one_iteration(node, comfy):
    comfy.interrupt_at = 3
    management = comfy.modules["comfy.model_management"]
    with pytest.raises(management.InterruptProcessingException):
        comfy.execute(node, content=as_batch(make_content()), style=as_batch(make_style()),
                      **{**SMALL, "iterations": 50})
    assert [value for value, _, _ in comfy.updates] == [1, 2, 3]


def test_bad_option_and_bad_tensor_give_friendly_errors(node, comfy):
    with pytest.raises(OptionError, match="size must be between 16 and 4096"):
        comfy.execute(node, content=as_batch(make_content()), style=as_batch(make_style()), **{**SMALL, "size": 8})
    with pytest.raises(NSTError, match="IMAGE tensor"):
        comfy.execute(node, content=torch.zeros(32, 32, 3), style=as_batch(make_style()), **SMALL)


def test_weights_found_in_comfyui_models_folder(comfy, vgg_weights):
    folder = comfy.modules["folder_paths"]
    assert comfy.folders["vgg19"] == [f"{folder.models_dir}/vgg19"]
    node = comfy.pack.NODE_CLASS_MAPPINGS["NeuralStyleTransfer"]()
    with pytest.raises(WeightsError, match="nst-bot fetch-assets"):  # empty cache, no NST_WEIGHTS, empty folder
        comfy.execute(node, content=as_batch(make_content()), style=as_batch(make_style()), **SMALL)
    target = Path(comfy.folders["vgg19"][0])
    target.mkdir(parents=True)
    shutil.copy(vgg_weights, target / "vgg19-features.pth")
    (out,) = comfy.execute(node, content=as_batch(make_content()), style=as_batch(make_style()),
                           **{**SMALL, "iterations": 2})
    assert out.shape[0] == 1


@pytest.mark.slow  # stylises an animation's frames: about 10-20 s on a 2-core AVX2 EPYC
def test_temporal_stylises_the_batch_as_frames_of_one_animation(node, comfy):
    from nst_engine.cost import animation_iterations
    from nst_engine.options import StylizeOptions
    from nst_engine.testing import ball_scene

    animation, still = ball_scene((64, 40), 4)
    frames, style = as_batch(*animation.frames), as_batch(make_style())
    # 40 iterations: with SMALL's 8, frames stylised one by one stay so close to their content that they hardly
    # flicker either, and there is nothing to halve (benchmarks/README.md, "Animations").
    options = {**SMALL, "size": 64, "iterations": 40, "temporal_weight": 100.0}
    (apart,) = comfy.execute(node, content=frames, style=style, **options)
    comfy.updates.clear()
    (together,) = comfy.execute(node, content=frames, style=style, temporal=True, **options)
    assert tuple(together.shape) == tuple(apart.shape) == (4, 40, 64, 3)

    def flicker(batch: torch.Tensor) -> float:
        return float((batch[1:] - batch[:-1]).abs()[:, torch.from_numpy(still)].mean())

    assert flicker(together) < flicker(apart) / 2
    total = animation_iterations(StylizeOptions.from_mapping(options), 4)
    assert comfy.bars[-1] == total and [value for value, _, _ in comfy.updates] == list(range(1, total + 1))
    assert "temporal" in node.INPUT_TYPES()["optional"]
