"""`nst-bot stylize` end to end in a subprocess: results on disk, and one-line errors (no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO, make_content, make_style


def nst_bot(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd or REPO, env={**os.environ, **(env or {})})


@pytest.fixture()
def files(tmp_path: Path, isolated_cache) -> Path:
    make_content(90, 60).save(tmp_path / "content.png")
    make_style().save(tmp_path / "style.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    data = (tmp_path / "content.png").read_bytes()
    (tmp_path / "corrupt.png").write_bytes(data[: len(data) // 3])
    return tmp_path


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nst-bot: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_stylize_with_style_files_writes_the_result(files, vgg_weights):
    (files / "out").mkdir()
    out = files / "out" / "result.png"
    result = nst_bot("stylize", str(files / "content.png"), "-o", str(out), "--style", str(files / "style.jpg"),
                     "--style", str(files / "content.png"), "--style-weights", "3,1", "--size", "48",
                     "--iterations", "3", "--weights", str(vgg_weights), "--seed", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (48, 32)  # aspect ratio of the 90×60 content
    assert "wrote" in result.stdout and "3 iterations" in result.stdout
    assert "100%" in result.stderr  # the progress bar (line mode when not a terminal)


def test_stylize_with_a_preset_and_weights_from_the_environment(files, vgg_weights):
    out = files / "preset.webp"
    result = nst_bot("stylize", str(files / "content.png"), "-o", str(out), "--preset", "waves", "--size", "40",
                     "--iterations", "2", "--preserve-colors", "luminance", env={"NST_WEIGHTS": str(vgg_weights)})
    assert result.returncode == 0, result.stderr
    assert Image.open(out).format == "WEBP"


@pytest.mark.parametrize("args, fragments", [
    (["missing.png", "--style", "style.jpg"], ["content image file", "does not exist"]),
    (["notes.txt", "--style", "style.jpg"], ["content image is not an image"]),
    (["content.png", "--style", "corrupt.png"], ["style image is corrupt or truncated"]),
    (["content.png"], ["either --style IMG", "or --preset NAME"]),
    (["content.png", "--style", "style.jpg", "--preset", "waves"], ["not both or neither"]),
    (["content.png", "--preset", "mona-lisa"], ["unknown preset 'mona-lisa'", "waves"]),
    (["content.png", "--style", "style.jpg", "--size", "9"], ["size must be between 16 and 4096, not 9"]),
    (["content.png", "--style", "style.jpg", "--iterations", "lots"], ["iterations must be a whole number"]),
    (["content.png", "--style", "style.jpg", "--strength", "0"], ["strength must be between 0.01 and 100"]),
    (["content.png", "--style", "style.jpg", "--quality", "ultra"], ["unknown quality 'ultra'"]),
    (["content.png", "--style", "style.jpg"], ["No VGG19 weights found", "nst-bot fetch-assets", "NST_WEIGHTS"]),
])
def test_bad_input_gets_one_clear_line(files, args, fragments):
    result = nst_bot("stylize", *args, "-o", "out.png", cwd=files)
    assert_one_line_error(result, *fragments)
    assert not (files / "out.png").exists()


def test_bad_output_name_and_argparse_errors(files, vgg_weights):
    result = nst_bot("stylize", "content.png", "--style", "style.jpg", "-o", "out.bmp", cwd=files)
    assert_one_line_error(result, "use a .png, .jpg, .webp or .gif")
    result = nst_bot("stylize", "content.png", "--style", "style.jpg", "-o", "o.png", "--preserve-colors", "sepia",
                     cwd=files)
    assert_one_line_error(result, "--preserve-colors cannot be 'sepia'", "choose from none, luminance, histogram")
    assert result.returncode == 2


@pytest.mark.slow  # runs three CLI jobs: about 10-20 s on a 2-core AVX2 EPYC
def test_a_result_carries_its_recipe_and_from_repeats_it(files, vgg_weights):
    """The PNG's text chunks hold the options; --from reads them (and the files they name) back into the same
    picture, and flags given with it win over the recipe."""
    first = nst_bot("stylize", "content.png", "--style", "style.jpg", "-o", "first.png", "--size", "40",
                    "--iterations", "3", "--seed", "7", "--strength", "2.5", "--preserve-colors", "luminance",
                    "--tv-weight", "3", "--weights", str(vgg_weights), "--device", "cpu", cwd=files)
    assert first.returncode == 0, first.stderr
    info = Image.open(files / "first.png").info
    recipe = json.loads(info["nst-bot"])
    assert recipe["content"] == "content.png" and recipe["styles"] == ["style.jpg"]
    assert recipe["options"] == {"size": 40, "iterations": 3, "seed": 7, "strength": 2.5,
                                 "preserve_colors": "luminance", "tv_weight": 3.0}
    assert recipe["engine"].startswith("nst-bot ")
    assert info["parameters"].startswith("style style.jpg, size 40, iterations 3, strength 2.5, seed 7, colours "
                                         "luminance, nst-bot ")
    again = nst_bot("stylize", "--from", "first.png", "-o", "again.png", "--weights", str(vgg_weights), cwd=files)
    assert again.returncode == 0, again.stderr
    assert (files / "again.png").read_bytes() == (files / "first.png").read_bytes()  # deterministic on the CPU
    bigger = nst_bot("stylize", "--from", "first.png", "-o", "bigger.png", "--size", "48", "--preset", "waves",
                     "--weights", str(vgg_weights), cwd=files)
    assert bigger.returncode == 0, bigger.stderr
    changed = json.loads(Image.open(files / "bigger.png").info["nst-bot"])
    assert changed["preset"] == "waves" and "styles" not in changed
    assert changed["options"]["size"] == 48 and changed["options"]["seed"] == 7


@pytest.mark.parametrize("case, fragments", [
    ("not a result", ["--from content.png: a PNG without a recipe"]),
    ("a jpeg", ["--from style.jpg: a JPEG file (recipes live in PNG results)"]),
    ("missing", ["--from nowhere.png: the file does not exist"]),
    ("style gone", ["the style image style.jpg (named in the recipe in first.png) is not there",
                    "give it with --style IMG"]),
    ("from discord", ["the recipe in first.png names no content file (results from Discord do not)",
                      "nst-bot stylize CONTENT --from first.png -o OUT"]),
])
def test_from_explains_what_is_missing(files, vgg_weights, case, fragments):
    from nst_engine.images import save_image
    from nst_engine.options import StylizeOptions
    from nst_engine.recipe import Recipe

    content = "" if case == "from discord" else "content.png"
    recipe = Recipe(StylizeOptions(size=32), style="your style image", content=content, styles=("style.jpg",))
    save_image(Image.open(files / "content.png"), files / "first.png", recipe.text_chunks())
    if case == "style gone":
        (files / "style.jpg").unlink()
    source = {"not a result": "content.png", "a jpeg": "style.jpg", "missing": "nowhere.png"}.get(case, "first.png")
    result = nst_bot("stylize", "--from", source, "-o", "out.png", "--weights", str(vgg_weights), cwd=files)
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2 and not (files / "out.png").exists()


def test_presets_lists_builtin_styles(isolated_cache):
    result = nst_bot("presets")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"mosaic", "waves", "embers"} <= set(names) and "[ready]" in result.stdout


def test_broken_config_is_one_line(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[engine\nweights = 1")
    assert_one_line_error(nst_bot("presets", "--config", str(bad)), "is not valid TOML")
    bad.write_text("[engine]\ndevice = 'tpu'\n")
    assert_one_line_error(nst_bot("presets", "--config", str(bad)), "[engine] device must be auto, cpu or cuda")


def test_stylize_help_is_readable():
    """One "advanced options" heading, no empty defaults, whole numbers written out."""
    text = nst_bot("stylize", "--help").stdout
    assert text.count("advanced options:") == 1 and "\nadvanced:" not in text
    assert "(default ;" not in text and "default )" not in text
    assert "0–2,147,483,647" in text and "e+" not in text
    advanced = text.split("advanced options:")[1]
    assert "--size" not in advanced and "--tv-weight" in advanced  # the everyday flags come first
