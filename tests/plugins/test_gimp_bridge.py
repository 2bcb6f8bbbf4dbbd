"""The GIMP plug-in's bridge to nst-bot, without GIMP: real ``nst-bot`` subprocesses from this virtualenv.

It runs in the default suite (the GIMP-in-a-chroot test is opt-in), covering what GIMP cannot show headless:
cancelling, and the engine ending when GIMP kills the plug-in.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import make_content, make_style
from tests.plugins.plugin_helpers import PLUGINS, style_distance

BRIDGE_PATH = PLUGINS / "gimp" / "nst-style-transfer" / "nst_bridge.py"
NST_BOT = str(Path(sys.prefix) / "bin" / "nst-bot")


def load_bridge():
    spec = importlib.util.spec_from_file_location("nst_bridge", BRIDGE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bridge = load_bridge()


@pytest.fixture()
def images(tmp_path: Path, vgg_weights: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NST_WEIGHTS", str(vgg_weights))
    monkeypatch.chdir(tmp_path)  # no ./config.toml: nst-bot's built-in presets
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    make_content().save(content)
    make_style().save(style)
    return content, style, tmp_path / "styled.png"


def test_options_come_from_the_engine_definition():
    from nst_engine.options import option_specs

    options = bridge.read_options(NST_BOT)
    assert [o["name"] for o in options] == [spec.name for spec in option_specs(user_only=True)]
    size = next(o for o in options if o["name"] == "size")
    assert (size["type"], size["low"], size["high"]) == ("int", 16, 4096)


def test_stylize_streams_progress_and_writes_the_result(images, vgg_weights):
    content, style, output = images
    events = []
    done = bridge.stylize(NST_BOT, content, output, style=style, options={"size": 48, "iterations": 6},
                          on_progress=lambda event: events.append(event) or True)
    assert [e["iteration"] for e in events] == list(range(1, 7)) and events[-1]["fraction"] == 1.0
    assert done["output"] == str(output) and (done["width"], done["height"]) == (48, 32)
    styled = Image.open(output)
    before = style_distance(vgg_weights, make_content().resize(styled.size), make_style())
    assert style_distance(vgg_weights, styled, make_style()) < 0.8 * before


def test_presets_are_listed_and_usable(images):
    content, _, output = images
    presets = bridge.read_presets(NST_BOT)
    assert "mosaic" in presets
    bridge.stylize(NST_BOT, content, output, preset=presets[0], options={"size": 32, "iterations": 1},
                   on_progress=lambda event: True)
    assert output.is_file()


def test_cancel_ends_nst_bot_within_an_iteration(images):
    content, style, output = images
    seen = []

    def cancel_at_second(event):
        seen.append(event["iteration"])
        return event["iteration"] < 2

    started = time.monotonic()
    with pytest.raises(bridge.Cancelled):
        bridge.stylize(NST_BOT, content, output, style=style, options={"size": 48, "iterations": 2000},
                       on_progress=cancel_at_second)
    assert seen == [1, 2] and not output.exists()
    assert time.monotonic() - started < 60  # 2000 iterations would take many minutes


def test_nst_bot_errors_come_back_as_one_line(images, monkeypatch):
    content, style, output = images
    with pytest.raises(bridge.BridgeError, match=r"^size must be between 16 and 4096, not 4$"):
        bridge.stylize(NST_BOT, content, output, style=style, options={"size": 4}, on_progress=lambda e: True)
    monkeypatch.delenv("NST_WEIGHTS")
    with pytest.raises(bridge.BridgeError, match="nst-bot fetch-assets"):
        bridge.stylize(NST_BOT, content, output, style=style, options={}, on_progress=lambda e: True)


def test_finding_nst_bot(monkeypatch, tmp_path):
    monkeypatch.setenv("NST_BOT", NST_BOT)
    assert bridge.find_executable() == NST_BOT
    monkeypatch.setenv("NST_BOT", str(tmp_path / "missing"))
    with pytest.raises(bridge.BridgeError, match="NST_BOT=.*not an executable"):
        bridge.find_executable()
    monkeypatch.delenv("NST_BOT")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(bridge.BridgeError, match="set NST_BOT"):
        bridge.find_executable()


PLUG_IN_STAND_IN = """
import sys
sys.path.insert(0, {folder!r})
import nst_bridge

def started(event):
    print("running", flush=True)
    return True

nst_bridge.stylize({nst_bot!r}, {content!r}, {output!r}, style={style!r},
                   options={{"size": 48, "iterations": 5000}}, on_progress=started)
"""


def test_nst_bot_ends_when_the_plug_in_is_killed(images):
    """GIMP cancels a plug-in by killing its process; the engine it started must not run on.

    Two things end it: Linux's parent-death signal (set by the bridge) and, at the latest, the broken pipe on
    its next progress line; the test checks the outcome, within one iteration at this size.
    """
    content, style, output = images
    code = PLUG_IN_STAND_IN.format(folder=str(BRIDGE_PATH.parent), nst_bot=NST_BOT, content=str(content),
                                   output=str(output), style=str(style))
    plug_in = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert plug_in.stdout.readline().strip() == "running"
        children = Path(f"/proc/{plug_in.pid}/task/{plug_in.pid}/children").read_text().split()
        assert len(children) == 1
        engine = int(children[0])
        plug_in.send_signal(signal.SIGKILL)
        plug_in.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(engine) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(engine)
    finally:
        plug_in.kill()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is still a running process (an exited, unreaped child counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")
