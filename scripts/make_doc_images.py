"""Draw the pictures in docs/images/: a stylised result, and what the Discord flow looks like.

    python scripts/make_doc_images.py [--weights PATH]

The result is made by the real engine. Without --weights it uses a seeded random VGG19 (as the tests do: the
real weights cannot be downloaded where these were made), which still stylises visibly; the real weights give
a stronger, cleaner transfer. The Discord picture is captured from a real run: the real bot and its engine
against the tests' loopback Discord stand-in (tests/face/discord_standin.py), one `fast` job with the mosaic
preset; its texts, buttons and images are what the bot posted (about a minute on an idle 2-core CPU).

    python scripts/make_doc_images.py --only flow     # only the Discord picture (or --only result, sheets)
    python scripts/make_doc_images.py --weights vgg19-dcbb9e9d.pth --only result --only sheets

With real weights (the file `nst-bot fetch-assets` caches, or torchvision's download) this regenerates the README's
result and the border contact sheets, so the first real-weights sample can be seen. The sheets go to
benchmarks/out/: `doc-border-sheet.png` (the landscape with every preset at 256 px, the fast level's 45 iterations)
and `doc-border-edges.png` (the outer 24 px of each side of those results, enlarged 3×, a band shows as a stripe
along the top of a strip).

The captured texts go to docs/images/discord-flow.json too; tests/test_docs.py compares them with the bot's
buttons and message formats, so a change to those fails there until the picture is made again.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.engine import content_scene  # noqa: E402

OUT = ROOT / "docs" / "images"
STYLE = ROOT / "bot" / "assets" / "presets" / "mosaic.png"
SHEETS = ROOT / "benchmarks" / "out"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(size: int, bold: bool = False) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype(BOLD if bold else FONT, size)
    except OSError:
        return ImageFont.load_default()


def stylise(content: Image.Image, style: Image.Image, weights: Path) -> Image.Image:
    from nst_engine.options import StylizeOptions
    from nst_engine.transfer import Engine

    return Engine(str(weights)).stylize(content, [style], StylizeOptions(size=384, iterations=60, seed=1)).image


def border_sheets(weights: Path) -> list[Path]:
    """Every preset on the landscape at 256 px, as a contact sheet and as a sheet of the four edges enlarged."""
    from benchmarks.borders import edge_sheet
    from benchmarks.quality import contact_sheet
    from nst_engine.options import StylizeOptions
    from nst_engine.transfer import Engine

    engine, content = Engine(str(weights)), content_scene(256, 192)
    results = [(path.stem, engine.stylize(content, [Image.open(path).convert("RGB")],
                                          StylizeOptions(size=256, iterations=45, seed=1)).image)
               for path in sorted(STYLE.parent.glob("*.png"))]
    SHEETS.mkdir(parents=True, exist_ok=True)
    return [contact_sheet(SHEETS / "doc-border-sheet.png", [("content", content), *results], height=150),
            edge_sheet(SHEETS / "doc-border-edges.png", [("content", content), *results])]


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


@dataclass
class Flow:
    """What the user and the bot posted in one real job, as the Discord stand-in received it."""

    command: str
    content: Image.Image
    status: str
    preview: Image.Image | None
    result: str
    buttons: list[str]
    image: Image.Image


def capture_flow(content: Image.Image, weights: Path) -> Flow:
    """Run the real bot (``nst-bot run``, its engine process, the given weights) against the loopback Discord
    stand-in of the tests, ask for the ``FLOW_QUALITY`` level with the mosaic preset, and keep what it posts."""
    from tests.face.discord_standin import StandinThread
    from tests.face.harness import BotProcess, decoded, png_bytes, result_message, status_message, stylize

    with tempfile.TemporaryDirectory() as scratch, StandinThread() as standin:
        folder = Path(scratch)
        config = folder / "config.toml"
        config.write_text(FLOW_CONFIG.format(api=standin.api_base, gateway=standin.gateway_url, weights=weights,
                                             data=folder / "data"))
        bot = BotProcess(config, folder / "bot.log").start()
        try:
            bot.wait_ready()
            photo = standin.attachment("photo.png", png_bytes(content))
            token = stylize(standin, preset="mosaic", quality=FLOW_QUALITY, content=photo)
            status_id = int(status_message(standin, token)["id"])
            status: dict = {}
            deadline = time.monotonic() + JOB_TIMEOUT
            while "here is your image" not in str(standin.followups(token)) and time.monotonic() < deadline:
                latest = standin.message(status_id) or {}
                if "%" in latest.get("content", "") and latest.get("attachments") and not _past(status, 0.6):
                    status = latest
                time.sleep(0.2)
            result = result_message(standin, token)
            preview = decoded(standin, status["attachments"][0]) if status.get("attachments") else None
            return Flow(f"/stylize  content: photo.png  preset: mosaic  quality: {FLOW_QUALITY}", content,
                        status.get("content", ""), preview, result["content"],
                        [_button(button) for row in result["components"] for button in row["components"]],
                        decoded(standin, result["attachments"][0]))
        finally:
            bot.stop()


FLOW_QUALITY = "fast"  # the built-in level (256 px, 45 iterations): a real job that is quick to capture
JOB_TIMEOUT = 900  # seconds for that job on a busy CPU
FLOW_CONFIG = """
[discord]
api_base = "{api}"
gateway_url = "{gateway}"
[engine]
weights = "{weights}"
device = "cpu"
threads = 2
[storage]
data_dir = "{data}"
[bot]
allowed_attachment_hosts = ["127.0.0.1"]
"""


def _past(status: dict, fraction: float) -> bool:
    """Whether a status message's progress is already beyond ``fraction`` (the picture shows one mid-way)."""
    found = re.search(r"(\d+)%", status.get("content", ""))
    return bool(found) and int(found.group(1)) >= fraction * 100


def _button(component: dict) -> str:
    emoji = (component.get("emoji") or {}).get("name", "")
    return f"{emoji} {component.get('label') or ''}".strip()


def drawable(text: str) -> str:
    """Discord markdown and mentions as a reader sees them, without the emoji DejaVu cannot draw."""
    text = re.sub(r"<@!?\d+>", "@alice", text).replace("*", "").replace("`", "")
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    return "".join(ch for ch in text if 0x2580 <= ord(ch) <= 0x259F  # the progress bar's blocks
                   or unicodedata.category(ch) not in ("So", "Mn", "Cf")).strip()


def discord_flow(flow: Flow) -> Image.Image:
    """A Discord channel as the user saw the job: the command, the status message mid-way, the result with its
    buttons; every text and picture is the one the bot posted."""
    dark, text, muted, accent = (49, 51, 56), (219, 222, 225), (148, 155, 164), (88, 101, 242)
    body = font(16)
    button_rows = [flow.buttons[i:i + 5] for i in range(0, len(flow.buttons), 5)]
    image = Image.new("RGB", (1000, 1200), dark)  # cropped to what was drawn
    draw = ImageDraw.Draw(image)

    def message(y: int, colour: tuple[int, int, int], letter: str, name: str, lines: str) -> int:
        draw.ellipse([20, y, 60, y + 40], fill=colour)
        draw.text((33, y + 8), letter, fill="white", font=font(20, bold=True))
        draw.text((76, y), name, fill="white", font=font(17, bold=True))
        for line in drawable(lines).splitlines():
            y += 24
            draw.text((76, y), line, fill=text, font=body)
        return y + 30

    y = message(20, (237, 66, 69), "A", "alice", flow.command)
    image.paste(flow.content.resize((160, 120)), (76, y))
    y = message(y + 140, accent, "N", "nst-bot", flow.status)
    if flow.preview is not None:
        image.paste(flow.preview.resize((128, round(128 * flow.preview.height / flow.preview.width))), (76, y))
    y = message(y + 116, accent, "N", "nst-bot", flow.result)
    image.paste(flow.image.resize((160, round(160 * flow.image.height / flow.image.width))), (76, y))
    y += round(160 * flow.image.height / flow.image.width) + 10
    for row in button_rows:
        x = 76
        for label in row:
            label = drawable(label)
            width = round(draw.textlength(label, font=font(15))) + 32
            draw.rounded_rectangle([x, y, x + width, y + 32], 4, fill=(78, 80, 88))
            draw.text((x + 16, y + 6), label, fill="white", font=font(15))
            x += width + 8
        y += 40
    draw.text((76, y + 4), "captured from a real run; its times are that run's (scripts/make_doc_images.py)",
              fill=muted, font=font(12))
    return image.crop((0, 0, image.width, y + 28))


PICTURES = ("result", "flow", "sheets")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a torchvision vgg19 .pth file (default: seeded random)")
    parser.add_argument("--only", choices=PICTURES, action="append", help="make only these pictures (repeatable)")
    args = parser.parse_args()
    from nst_engine.testing import write_random_vgg19

    OUT.mkdir(parents=True, exist_ok=True)
    content, style = content_scene(384, 288), Image.open(STYLE).convert("RGB")
    with tempfile.TemporaryDirectory() as scratch:
        weights = args.weights or write_random_vgg19(Path(scratch) / "vgg19.pth", seed=0)
        wanted = args.only or PICTURES
        if "result" in wanted:
            result_strip(content, style, stylise(content, style, weights)).save(OUT / "result.png", optimize=True)
            print(f"wrote {OUT / 'result.png'}")
        if "sheets" in wanted:
            print("wrote " + ", ".join(map(str, border_sheets(weights))))
        if "flow" in wanted:
            flow = capture_flow(content, weights)
            discord_flow(flow).save(OUT / "discord-flow.png", optimize=True)
            texts = {"command": flow.command, "status": flow.status, "result": flow.result, "buttons": flow.buttons}
            (OUT / "discord-flow.json").write_text(json.dumps(texts, ensure_ascii=False, indent=2) + "\n")
            print(f"wrote {OUT / 'discord-flow.png'} and its texts, {OUT / 'discord-flow.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
