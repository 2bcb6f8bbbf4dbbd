"""What animation support costs at intake, measured through the real sandboxed decoder pool.

1. Stills: the same upload decoded as a still request (``max_frames`` 1, as a style image and every upload were
   before) and as a content request that allows an animation (``max_frames`` 48: the worker first reads the
   frame count from the headers); the two interleaved, round by round, the ratio of the medians printed.
2. Animations: the ball GIF of 48 frames and a GIF of 400 frames (thinned to 48 while decoded): how long each
   takes from the request to the frames in the bot's process.

Nothing is asserted; figures are printed and written to benchmarks/out/animated_intake.json. Wall times on a
shared machine vary; the ratio of part 1 is measured in one run, its requests alternating.

    python benchmarks/animated_intake.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.intake.decoder import DecodeRequest, DecoderPool  # noqa: E402
from tests.intake import hostile_files  # noqa: E402
from tests.intake.animated_files import ball_gif, many_frame_gif  # noqa: E402

STILL = DecodeRequest("content image", max_pixels=25_000_000, long_side=2048, max_aspect=20)
CONTENT = DecodeRequest("content image", max_pixels=25_000_000, long_side=2048, max_aspect=20, max_frames=48,
                        frame_side=320)
UPLOADS = {
    "JPEG photo 4000×3000": lambda: hostile_files.encoded(hostile_files.noise(4000, 3000), "JPEG"),
    "PNG 1200×800": lambda: hostile_files.encoded(hostile_files.noise(1200, 800), "PNG"),
}


async def timed(pool: DecoderPool, data: bytes, request: DecodeRequest) -> float:
    started = time.perf_counter()
    await pool.decode(data, request)
    return time.perf_counter() - started


async def main(rounds: int) -> dict:
    pool = DecoderPool(workers=1, time_limit=60.0, memory_limit=2 << 30)
    await pool.start()
    figures: dict = {"stills": {}, "animations": {}}
    try:
        for name, make in UPLOADS.items():
            data = make()
            await timed(pool, data, STILL)  # warm-up
            still, content = [], []
            for _ in range(rounds):
                still.append(await timed(pool, data, STILL))
                content.append(await timed(pool, data, CONTENT))
            ratio = statistics.median(content) / statistics.median(still)
            figures["stills"][name] = {"still_request_median_s": statistics.median(still),
                                       "content_request_median_s": statistics.median(content),
                                       "ratio_content_over_still": ratio, "rounds": rounds}
            print(f"{name}: content request / still request = {ratio:.3f} (medians "
                  f"{statistics.median(content):.3f} s / {statistics.median(still):.3f} s, {rounds} rounds)")
        for name, data in (("ball GIF 96×64, 48 frames", ball_gif(48)[0]),
                           ("GIF 32×24, 400 frames → 48", many_frame_gif(400))):
            times = [await timed(pool, data, CONTENT) for _ in range(5)]
            figures["animations"][name] = {"median_s": statistics.median(times), "bytes": len(data)}
            print(f"{name}: {statistics.median(times):.3f} s (median of 5), {len(data)} bytes")
    finally:
        await pool.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    result = asyncio.run(main(parser.parse_args().rounds))
    out = REPO / "benchmarks" / "out" / "animated_intake.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out.relative_to(REPO)}")
