"""`nst-bot stylize` end to end in a subprocess: results on disk, and one-line errors (no traceback)."""

from __future__ import annotations

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
    result = nst_bot("stylize", "content.png", "--style", "style.jpg", "-o", "out.gif", cwd=files)
    assert_one_line_error(result, "use a .png, .jpg or .webp")
    result = nst_bot("stylize", "content.png", "--style", "style.jpg", "-o", "o.png", "--preserve-colors", "sepia",
                     cwd=files)
    assert result.returncode == 2 and "invalid choice: 'sepia'" in result.stderr and "Traceback" not in result.stderr


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
