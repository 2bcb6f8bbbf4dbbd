"""What the GIMP plug-in's subprocess design costs: one nst-bot run through the bridge against the same run in
process (network already loaded), measured in the same session.

    python benchmarks/plugin_bridge.py [--size 256] [--iterations 20] [--weights PATH]

Without --weights a seeded random VGG19 (same shapes and cost as the real one) is written to a temp folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.conftest import make_content, make_style  # noqa: E402

spec = importlib.util.spec_from_file_location("nst_bridge", HERE.parent / "plugins" / "gimp" /
                                              "nst-style-transfer" / "nst_bridge.py")
bridge = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bridge)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--weights")
    args = parser.parse_args()
    from nst_engine.options import StylizeOptions
    from nst_engine.testing import write_random_vgg19
    from nst_engine.transfer import Engine

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        weights = args.weights or str(write_random_vgg19(folder / "vgg19.pth", seed=0))
        content, style = folder / "content.png", folder / "style.png"
        make_content(args.size, args.size * 2 // 3).save(content)
        make_style(args.size).save(style)
        options = {"size": args.size, "iterations": args.iterations}

        started = time.perf_counter()
        engine = Engine(weights)
        loaded = time.perf_counter()
        engine.stylize(content, [style], StylizeOptions(**options))
        in_process = time.perf_counter() - loaded
        load = loaded - started

        first_event: list[float] = []
        started = time.perf_counter()
        os.environ["NST_WEIGHTS"] = weights
        bridge.stylize(str(Path(sys.prefix) / "bin" / "nst-bot"), content, folder / "out.png", style=style,
                       options=options, on_progress=lambda e: first_event.append(time.perf_counter()) or True)
        through_bridge = time.perf_counter() - started

    print(f"size {args.size}, {args.iterations} iterations")
    print(f"in process (network loaded):   {in_process:7.2f} s   (loading it once: {load:.2f} s)")
    print(f"through nst-bot subprocess:    {through_bridge:7.2f} s   "
          f"(start-up to first progress: {first_event[0] - started:.2f} s)")
    print(f"ratio subprocess / in process: {through_bridge / in_process:7.2f}")


if __name__ == "__main__":
    main()
