"""Draw the pictures in docs/images/: a stylised result, and what the Discord flow looks like.

    python scripts/make_doc_images.py [--weights PATH]

The result is made by the real engine. Without --weights it uses a seeded random VGG19 (as the tests do: the
real weights cannot be downloaded where these were made), which still stylises visibly; the real weights give
a stronger, cleaner transfer. The Discord picture is drawn with Pillow from the bot's own message texts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.engine import content_scene  # noqa: E402
from bot.ops.terminal import bar  # noqa: E402

OUT = ROOT / "docs" / "images"
STYLE = ROOT / "bot" / "assets" / "presets" / "mosaic.png"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(size: int, bold: bool = False) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype(BOLD if bold else FONT, size)
    except OSError:
        return ImageFont.load_default()


def stylise(weights: Path | None) -> tuple[Image.Image, Image.Image, Image.Image]:
    from nst_engine.options import StylizeOptions
    from nst_engine.testing import write_random_vgg19
    from nst_engine.transfer import Engine

    content, style = content_scene(384, 288), Image.open(STYLE).convert("RGB")
    with tempfile.TemporaryDirectory() as scratch:
        path = weights or write_random_vgg19(Path(scratch) / "vgg19.pth", seed=0)
        result = Engine(str(path)).stylize(content, [style], StylizeOptions(size=384, iterations=60, seed=1))
    return content, style, result.image


def result_strip(content: Image.Image, style: Image.Image, result: Image.Image) -> Image.Image:
    """content | style | result, labelled."""
    height, gap, label = 288, 12, 30
    tiles = [(image.resize((round(image.width * height / image.height), height)), name)
             for image, name in ((content, "photo"), (style, "style: mosaic preset"), (result, "result"))]
    width = sum(tile.width for tile, _ in tiles) + gap * (len(tiles) + 1)
    sheet = Image.new("RGB", (width, height + label + 2 * gap), "white")
    draw, x = ImageDraw.Draw(sheet), gap
    for tile, name in tiles:
        sheet.paste(tile, (x, gap))
        draw.text((x, height + gap + 6), name, fill=(40, 40, 40), font=font(18))
        x += tile.width + gap
    return sheet


def discord_flow(content: Image.Image, result: Image.Image) -> Image.Image:
    """A Discord channel as a user sees a job: the command, the status message, the result with its buttons."""
    dark, text, muted, accent = (49, 51, 56), (219, 222, 225), (148, 155, 164), (88, 101, 242)
    image = Image.new("RGB", (900, 640), dark)
    draw = ImageDraw.Draw(image)

    def avatar(y: int, colour: tuple[int, int, int], letter: str) -> None:
        draw.ellipse([20, y, 60, y + 40], fill=colour)
        draw.text((33, y + 8), letter, fill="white", font=font(20, bold=True))

    avatar(20, (237, 66, 69), "A")
    draw.text((76, 20), "alice", fill="white", font=font(17, bold=True))
    draw.text((76, 46), "/stylize  content: photo.png  preset: mosaic  quality: standard", fill=text, font=font(16))
    image.paste(content.resize((160, 120)), (76, 76))

    avatar(216, accent, "N")
    draw.text((76, 216), "nst-bot", fill="white", font=font(17, bold=True))
    draw.rounded_rectangle([142, 218, 180, 236], 4, fill=accent)
    draw.text((148, 219), "APP", fill="white", font=font(12, bold=True))
    draw.text((76, 242), "alice · Mosaic · standard (512 px, 80 iterations)", fill=text, font=font(16))
    draw.text((76, 266), f"{bar(0.62, 16)}  62% · iteration 50/80 · ETA 18s", fill=text, font=font(16))
    image.paste(result.resize((128, 96)), (76, 294))
    draw.rounded_rectangle([76, 400, 176, 432], 4, fill=(78, 80, 88))
    draw.text((100, 406), "Cancel", fill="white", font=font(15))

    avatar(452, accent, "N")
    draw.text((76, 452), "nst-bot", fill="white", font=font(17, bold=True))
    draw.text((76, 478), "@alice here is your image — Mosaic · standard · 512×384 · strength 1 · 47s",
              fill=text, font=font(16))
    image.paste(result.resize((160, 120)), (76, 506))
    for x, label in ((250, "Stronger"), (370, "Weaker")):
        draw.rounded_rectangle([x, 592, x + 106, 624], 4, fill=accent)
        draw.text((x + 16, 598), label, fill="white", font=font(15))
    draw.text((560, 610), "drawn from the bot's message texts", fill=muted, font=font(12))
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a torchvision vgg19 .pth file (default: seeded random)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    content, style, result = stylise(args.weights)
    result_strip(content, style, result).save(OUT / "result.png", optimize=True)
    discord_flow(content, result).save(OUT / "discord-flow.png", optimize=True)
    print(f"wrote {OUT / 'result.png'} and {OUT / 'discord-flow.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
