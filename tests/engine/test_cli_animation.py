"""`nst-bot stylize in.gif -o out.gif|.webp|.png`: an animated content stays animated with its timing; a damaged
frame or an output that cannot hold frames is one clear line. The formats run the CLI's ``main`` in this process
(one torch import for all three); the damaged frame runs ``nst-bot`` as a process, stderr and exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from nst_engine.animated_images import load_animation, save_animation
from nst_engine.animation import Animation
from nst_engine.recipe import read_recipe
from nst_engine.testing import ball_scene
from tests.conftest import make_style
from tests.engine.test_cli import assert_one_line_error, nst_bot

TINY = ("--size", "32", "--iterations", "4", "--min-scale", "32")


@pytest.fixture()
def files(tmp_path: Path, isolated_cache) -> Path:
    animation, _ = ball_scene((32, 24), 4)
    save_animation(Animation(animation.frames, (60, 70, 80, 90), 0), tmp_path / "ball.gif")
    make_style().save(tmp_path / "style.png")
    return tmp_path


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_an_animated_gif_stays_animated_with_its_timing(files, vgg_weights, suffix, capsys, monkeypatch):
    monkeypatch.chdir(files)
    out = files / f"out{suffix}"
    assert main(["stylize", "ball.gif", "--style", "style.png", "-o", out.name, *TINY,
                 "--weights", str(vgg_weights)]) == 0
    assert "4 frames" in capsys.readouterr().out
    back = load_animation(out)
    assert back.frame_count == 4 and back.durations_ms == (60, 70, 80, 90) and back.loop == 0
    assert back.size == (32, 24)
    if suffix == ".png":  # APNG keeps the recipe in text chunks, which --from reads back
        assert read_recipe(out).options.size == 32
    if suffix == ".gif":
        assert b"nst-bot" in Image.open(out).info["comment"]


def test_a_gif_with_a_damaged_frame_is_one_line(files, vgg_weights):
    data = (files / "ball.gif").read_bytes()
    (files / "broken.gif").write_bytes(data[:-3])
    result = nst_bot("stylize", "broken.gif", "--style", "style.png", "-o", "out.gif", *TINY,
                     "--weights", str(vgg_weights), cwd=files)
    assert_one_line_error(result, "Frame 4 of the content image is corrupt or truncated")
    assert result.returncode == 2 and not (files / "out.gif").exists()


def test_an_animation_into_a_jpeg_is_refused_before_any_work(files, vgg_weights, capsys, monkeypatch):
    monkeypatch.chdir(files)
    assert main(["stylize", "ball.gif", "--style", "style.png", "-o", "out.jpg", *TINY,
                 "--weights", str(vgg_weights)]) == 2
    assert capsys.readouterr().err.strip() == ("nst-bot: error: ball.gif is animated; write it to a .gif, .webp or "
                                              ".png (APNG) file, not .jpg")
    assert not (files / "out.jpg").exists()
