"""Helpers for the plug-in tests: a stand-in for ComfyUI's modules, and a pixel measure of "styled"."""

from __future__ import annotations

import functools
import types
from pathlib import Path

from PIL import Image

from tests.conftest import style_distance as shared_style_distance

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def style_distance(weights: Path, image: Image.Image, style: Image.Image) -> float:
    """The shared style measure (tests/conftest.py) with the test network, so it also judges a GIMP export."""
    return shared_style_distance(_engine(str(weights)), image, style)


@functools.lru_cache(maxsize=2)
def _engine(weights: str):
    from nst_engine.transfer import Engine

    return Engine(weights)


class ComfyStandIn:
    """The parts of ComfyUI that the node pack touches, recording what the node does with them.

    ComfyUI is not on PyPI and its repository (with its front end and models) is too large to fetch here, so
    ``comfy.utils``, ``comfy.model_management`` and ``folder_paths`` are replaced by these small modules that
    follow ComfyUI's documented signatures: ``ProgressBar(total).update_absolute(value, total, preview)``,
    ``throw_exception_if_processing_interrupted()`` raising ``InterruptProcessingException``, and
    ``folder_paths.models_dir`` / ``add_model_folder_path`` / ``get_folder_paths``.
    """

    def __init__(self, models_dir: Path) -> None:
        self.updates: list[tuple[int, int, object]] = []
        self.bars: list[int] = []
        self.interrupted = False
        self.interrupt_at: int | None = None  # simulate the user pressing Cancel when progress reaches this
        self.folders: dict[str, list[str]] = {}
        self.modules = self._build(models_dir)

    @staticmethod
    def execute(node: object, **inputs: object) -> tuple:
        """Call a node as ComfyUI's prompt executor does: its FUNCTION, inside ``torch.inference_mode()``."""
        import torch

        with torch.inference_mode():
            return getattr(node, node.FUNCTION)(**inputs)

    def _build(self, models_dir: Path) -> dict[str, types.ModuleType]:
        stand_in = self
        comfy = types.ModuleType("comfy")
        utils = types.ModuleType("comfy.utils")
        management = types.ModuleType("comfy.model_management")
        folder_paths = types.ModuleType("folder_paths")

        class ProgressBar:
            def __init__(self, total: int) -> None:
                self.total = total
                stand_in.bars.append(total)

            def update_absolute(self, value: int, total: int | None = None, preview: object = None) -> None:
                stand_in.updates.append((value, total if total is not None else self.total, preview))
                if stand_in.interrupt_at is not None and value >= stand_in.interrupt_at:
                    stand_in.interrupted = True

        class InterruptProcessingException(Exception):
            pass

        def throw_exception_if_processing_interrupted() -> None:
            if stand_in.interrupted:
                stand_in.interrupted = False  # ComfyUI clears the flag when it raises
                raise InterruptProcessingException()

        def add_model_folder_path(name: str, path: str) -> None:
            stand_in.folders.setdefault(name, []).append(path)

        utils.ProgressBar = ProgressBar
        management.InterruptProcessingException = InterruptProcessingException
        management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
        folder_paths.models_dir = str(models_dir)
        folder_paths.add_model_folder_path = add_model_folder_path
        folder_paths.get_folder_paths = lambda name: list(stand_in.folders.get(name, []))
        comfy.utils, comfy.model_management = utils, management
        return {"comfy": comfy, "comfy.utils": utils, "comfy.model_management": management,
                "folder_paths": folder_paths}
