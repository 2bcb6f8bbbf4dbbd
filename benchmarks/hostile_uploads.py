"""What hostile uploads cost the bot, before (decoding in the bot's process, as the ``main`` branch does) and
after (the sandboxed decoder pool of :mod:`bot.intake.decoder`).

1. Per file: a fresh Python process takes in the file the old way (``probe_image`` + ``load_image`` +
   resize, in-process) or the new way (``DecoderPool.decode``); printed are the CPU seconds and peak memory
   growth of that process (the bot's side) and, after, of the decoder processes. The old way is stopped after
   ``--cap`` seconds.
2. Through the real bot (``nst-bot run`` against the loopback Discord stand-in): the answer time of an
   ordinary ``/stylize`` with nothing else in flight, and while ``--hostile`` hostile uploads from three
   other members are being taken in; the old bot runs from the ``--before`` checkout.

Nothing is asserted; figures are printed and written to benchmarks/out/hostile_uploads.json.

    python benchmarks/hostile_uploads.py [--before /path/to/main/checkout] [--cap 60] [--hostile 6]
        [--files NAME-PART] [--skip-bot] [--bot-file "MPO (JPEG + MPF index), 20000 tiny scans, 4 MP"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.intake import hostile_files  # noqa: E402

MAX_PIXELS, KEEP_SIDE = 25_000_000, 2048  # the default [limits] max_pixels, and 2 × max_size
ANSWER_CAP = 300.0  # seconds an ordinary request is waited for before it counts as unanswered


def corpus() -> dict[str, bytes]:
    """The issue's hostile files at full size (inside the default 10 MB / 25 MP caps), and a normal photo."""
    return {
        "progressive JPEG, 3000 tiny scans, 25 MP": hostile_files.many_scan_jpeg(5000, 5000, 3000),
        "TIFF, 100000 pages": hostile_files.many_page_tiff(100_000),
        "GIF, 400000 frames": hostile_files.many_frame_gif(400_000),
        "16-bit greyscale PNG, 25 MP": hostile_files.sixteen_bit_grey_png(5000, 5000),
        "float greyscale TIFF, 2.25 MP": hostile_files.float_tiff(1500, 1500),
        "PostScript sent as PNG": hostile_files.endless_postscript(),
        "MPO (JPEG + MPF index), 20000 tiny scans, 4 MP": hostile_files.many_scan_mpo(2000, 2000, 20_000),
        "run-length BMP, end-of-line loops, 25 MP": hostile_files.rle_loop_bmp(20000, 1250),
        "PNG, 830000 empty chunks": hostile_files.chunk_flood_png(830_000),
        "ordinary photo JPEG, 24 MP": hostile_files.encoded(hostile_files.noise(600, 400).resize((6000, 4000)),
                                                            "JPEG", quality=90),
    }


# --- one measurement, in a fresh process -----------------------------------------------------------------

def usage(who: int) -> tuple[float, float]:
    """(CPU seconds, peak resident MB)."""
    used = resource.getrusage(who)
    return used.ru_utime + used.ru_stime, used.ru_maxrss / 1024


def measure_before(data: bytes, old_code: Path) -> dict[str, float]:
    sys.path.insert(0, str(old_code))
    from nst_engine_old.images import load_image, probe_image, resize_long_side

    cpu0, peak0 = usage(resource.RUSAGE_SELF)
    outcome = "decoded"
    try:
        probe_image(data, max_pixels=MAX_PIXELS)
        image = load_image(data, max_pixels=MAX_PIXELS)
        if max(image.size) > KEEP_SIDE:
            resize_long_side(image, KEEP_SIDE)
    except Exception as error:  # noqa: BLE001 - recorded, as the old intake would have shown it
        outcome = f"refused: {error}"
    cpu1, peak1 = usage(resource.RUSAGE_SELF)
    return {"bot_cpu_s": cpu1 - cpu0, "bot_peak_mb": peak1 - peak0, "outcome": outcome}


async def measure_after(data: bytes) -> dict[str, float]:
    from bot.intake.decoder import DecodeRequest, DecoderPool
    from nst_engine.errors import ImageError

    idle = DecoderPool(workers=1)
    await idle.start()
    await idle.close()
    start_cpu, _ = usage(resource.RUSAGE_CHILDREN)  # what starting a worker costs, taken off below
    pool = DecoderPool(workers=1)
    await pool.start()
    cpu0, peak0 = usage(resource.RUSAGE_SELF)
    outcome = "decoded"
    try:
        await pool.decode(data, DecodeRequest("upload", MAX_PIXELS, KEEP_SIDE, 20))
    except ImageError as error:
        outcome = f"refused: {error}"
    cpu1, peak1 = usage(resource.RUSAGE_SELF)
    await pool.close()
    children_cpu, children_peak = usage(resource.RUSAGE_CHILDREN)
    decode_cpu = max(0.0, children_cpu - 2 * start_cpu)  # both workers' start-up taken off
    return {"bot_cpu_s": cpu1 - cpu0, "bot_peak_mb": peak1 - peak0, "decoder_cpu_s": decode_cpu,
            "decoder_peak_mb": children_peak, "outcome": outcome}


def old_code_dir(before: Path, into: Path) -> Path:
    """The ``before`` checkout's image module, importable as ``nst_engine_old`` (it needs only its errors)."""
    package = into / "nst_engine_old"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("images.py", "errors.py"):
        (package / name).write_text((before / "nst_engine" / name).read_text())
    return into


def per_file(before: Path, cap: float, work: Path, only: str = "") -> list[dict]:
    old = old_code_dir(before, work)
    rows = []
    for name, data in corpus().items():
        if only not in name:
            continue
        path = work / "upload.bin"
        path.write_bytes(data)
        row = {"file": name, "bytes": len(data)}
        for way in ("before", "after"):
            command = [sys.executable, __file__, "--measure", way, "--file", str(path), "--old-code", str(old)]
            started = time.monotonic()
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=cap, env=_env())
                row[way] = json.loads(done.stdout.strip().splitlines()[-1])
            except subprocess.TimeoutExpired:
                row[way] = {"bot_cpu_s": None, "bot_peak_mb": None, "outcome": f"still decoding after {cap:g} s"}
            row[way]["wall_s"] = time.monotonic() - started
        rows.append(row)
        print(_file_line(row), flush=True)
    return rows


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _file_line(row: dict) -> str:
    def cpu(value: float | None) -> str:
        return "   >cap" if value is None else f"{value:7.2f}"

    def mb(value: float | None) -> str:
        return "   ?" if value is None else f"{value:4.0f}"

    before, after = row["before"], row["after"]
    return (f"{row['file'][:42]:42} {row['bytes'] / 1e6:6.2f} MB | before: bot {cpu(before['bot_cpu_s'])} s "
            f"{mb(before['bot_peak_mb'])} MB | after: bot {cpu(after['bot_cpu_s'])} s {mb(after['bot_peak_mb'])} MB, "
            f"decoder {cpu(after['decoder_cpu_s'])} s {mb(after['decoder_peak_mb'])} MB | {after['outcome'][:60]}")


# --- answer time through the real bot ----------------------------------------------------------------------

def answer_times(checkout: Path, hostile: dict[str, bytes], count: int, repeats: int, work: Path) -> dict:
    from tests.face.discord_standin import StandinThread, user
    from tests.face.harness import BotProcess, png_bytes, write_config
    from nst_engine.testing import write_random_vgg19
    from tests.conftest import make_content, make_style

    weights = work / "vgg19.pth"
    if not weights.exists():
        write_random_vgg19(weights)
    photo, style = png_bytes(make_content()), png_bytes(make_style())
    limits = {"max_upload_bytes": 10_000_000, "max_pixels": MAX_PIXELS, "max_jobs_per_user": 2, "max_queue": 100}
    results = {}
    with StandinThread() as standin:
        folder = work / checkout.name
        folder.mkdir(exist_ok=True)
        config = write_config(folder, standin, weights, limits=limits)
        origin = f'"http://127.0.0.1:{standin.port}"'  # the bare host too, as the old bot matched hosts alone
        config.write_text(config.read_text().replace(f"[{origin}]", f'["127.0.0.1", {origin}]'))
        here = os.getcwd()
        os.chdir(checkout)  # ``python -m bot`` imports the package from the working directory first
        try:
            bot = BotProcess(config, folder / "bot.log").start().wait_ready()
        finally:
            os.chdir(here)
        try:
            def ask(who: dict, data: bytes) -> str:
                content, style_file = standin.attachment("in.bin", data), standin.attachment("style.png", style)
                return standin.command("stylize", {"content": content, "style": style_file, "quality": "fast"}, who)

            def answered(token: str) -> bool:
                message = standin.original(token)
                return bool(message) and ("Queued" in message["content"] or "⚠️" in message["content"])

            def ordinary(first: int) -> list[float]:
                """Answer times of ``repeats`` ordinary requests from as many members, sent together."""
                sent = time.monotonic()
                tokens = [ask(user(730000000000000000 + first + n, f"ordinary{n}"), photo) for n in range(repeats)]
                times = {}
                deadline = sent + ANSWER_CAP
                while len(times) < len(tokens) and time.monotonic() < deadline:
                    times.update({t: time.monotonic() - sent for t in tokens if t not in times and answered(t)})
                    time.sleep(0.01)
                return [times.get(token, float("inf")) for token in tokens]

            results["none in flight"] = ordinary(0)
            for index, (name, data) in enumerate(hostile.items(), 1):
                attackers = [user(740000000000000000 + 10 * index + n, f"attacker{n}") for n in range(3)]
                tokens = [ask(attackers[n % 3], data) for n in range(count)]
                time.sleep(0.5)
                results[f"{count} × {name} in flight"] = ordinary(100 * index)
                standin.wait_for(lambda: all(answered(t) for t in tokens), 900, "the hostile answers", 0.1)
        finally:
            bot.stop()
    return results


# --- main ----------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, default=Path("/work/main"), help="checkout of the old code")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds before an old-way decode is stopped")
    parser.add_argument("--hostile", type=int, default=6, help="hostile uploads in flight")
    parser.add_argument("--repeats", type=int, default=3, help="ordinary requests per phase")
    parser.add_argument("--skip-bot", action="store_true", help="only the per-file figures")
    parser.add_argument("--files", default="", help="only the corpus files whose name contains this")
    parser.add_argument("--bot-file", default="progressive JPEG, 3000 tiny scans, 25 MP",
                        help="the hostile file sent through the real bot beside ordinary requests")
    parser.add_argument("--measure", choices=("before", "after"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--old-code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        data = args.file.read_bytes()
        result = (measure_before(data, args.old_code) if args.measure == "before"
                  else asyncio.run(measure_after(data)))
        print(json.dumps(result))
        return
    print(f"CPU: {_cpu_name()}, {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        report = {"files": per_file(args.before.resolve(), args.cap, work, args.files)}
        if not args.skip_bot:
            hostile = {args.bot_file: corpus()[args.bot_file]}
            report["answer_s"] = {}
            for label, checkout in (("before", args.before.resolve()), ("after", REPO)):
                times = answer_times(checkout, hostile, args.hostile, args.repeats, work)
                report["answer_s"][label] = times
                baseline = statistics.median(times["none in flight"])
                for phase, values in times.items():
                    median = statistics.median(values)
                    print(f"{label:6} ordinary /stylize answered, {phase:52}: median {median:6.2f} s, max "
                          f"{max(values):6.2f} s ({median / baseline:5.1f}× none in flight)", flush=True)
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    name = "hostile_uploads" + (f"-{args.files}" if args.files else "") + ("" if args.skip_bot else "-bot")
    (out / f"{name.replace(' ', '_')}.json").write_text(json.dumps(report, indent=2))


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
