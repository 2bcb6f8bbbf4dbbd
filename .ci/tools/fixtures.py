"""Host-side fixtures for .ci/image-check.sh: generated weights, a tiny content image, the bot's config for
the loopback stand-in, and a check of the image the container wrote.

    python .ci/tools/fixtures.py weights PATH [--seed N]
    python .ci/tools/fixtures.py content PATH
    python .ci/tools/fixtures.py config PATH --port PORT
    python .ci/tools/fixtures.py check-output PATH --long-side PX
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# What the container sees: the mounts .ci/image-check.sh makes.
CONTAINER_WEIGHTS = "/weights/vgg19.pth"
CONTAINER_DATA = "/data"


def write_weights(path: Path, seed: int) -> None:
    from nst_engine.testing import write_random_vgg19

    write_random_vgg19(path, seed)


def write_content(path: Path) -> None:
    """A 64×48 picture with edges and colour (a gradient, a disc), so stylisation has something to change."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 48))
    image.putdata([(x * 4, y * 5, 128) for y in range(48) for x in range(64)])
    ImageDraw.Draw(image).ellipse((20, 10, 44, 34), fill=(240, 200, 40))
    image.save(path)


def write_config(path: Path, port: int) -> None:
    """The bot against the stand-in on the host's loopback, with the mounted weights and /data volume."""
    path.write_text(f"""\
[discord]
api_base = "http://127.0.0.1:{port}/api/v10"
gateway_url = "ws://127.0.0.1:{port}/gateway"

[engine]
weights = "{CONTAINER_WEIGHTS}"
device = "cpu"

[storage]
data_dir = "{CONTAINER_DATA}"

[bot]
allowed_attachment_hosts = ["127.0.0.1"]

[quality.standard]
size = 48
iterations = 4
description = "tiny, for the image check"
""")


def check_output(path: Path, long_side: int) -> None:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        size, mode, colours = image.size, image.mode, len(image.getcolors(image.width * image.height))
    print(f"{path.name}: {size[0]}×{size[1]} {mode}, {colours} colours")
    if max(size) != long_side or mode != "RGB" or colours < 50:
        sys.exit(f"unexpected result image {path}: {size} {mode} with {colours} colours")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    weights = commands.add_parser("weights")
    weights.add_argument("path", type=Path)
    weights.add_argument("--seed", type=int, default=0)
    commands.add_parser("content").add_argument("path", type=Path)
    config = commands.add_parser("config")
    config.add_argument("path", type=Path)
    config.add_argument("--port", type=int, required=True)
    output = commands.add_parser("check-output")
    output.add_argument("path", type=Path)
    output.add_argument("--long-side", type=int, required=True)
    args = parser.parse_args()
    if args.command == "weights":
        write_weights(args.path, args.seed)
    elif args.command == "content":
        write_content(args.path)
    elif args.command == "config":
        write_config(args.path, args.port)
    else:
        check_output(args.path, args.long_side)


if __name__ == "__main__":
    main()
