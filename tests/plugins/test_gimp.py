"""The GIMP 3 plug-in, run headless by a real GIMP 3 from Debian trixie (opt-in: ``pytest -m gimp``).

The chroot is built once with debootstrap (``.ci/tools/build_gimp_chroot.sh``, cached under /var/cache/nst-bot-ci). GIMP
runs the installed plug-in through the python-fu batch interpreter; the plug-in calls nst-bot from this
project's virtualenv, bind-mounted at its own path (the chroot's Python has no torch, as on a user's machine).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from nst_engine.options import option_spec

from tests.conftest import REPO, make_content, make_style
from tests.plugins.plugin_helpers import PLUGINS, style_distance

pytestmark = pytest.mark.gimp

CHROOT = Path(os.environ.get("NST_GIMP_CHROOT", "/var/cache/nst-bot-ci/gimp-trixie"))
PLUG_IN = "nst-style-transfer"
NST_BOT = Path(sys.prefix) / "bin" / "nst-bot"  # this project's virtualenv, bind-mounted into the chroot

BATCH = """
import json
from gi.repository import Gimp, Gio

def export(layer, path):
    scratch = Gimp.Image.new(layer.get_width(), layer.get_height(), Gimp.ImageBaseType.RGB)
    copy = Gimp.Layer.new_from_drawable(layer, scratch)
    scratch.insert_layer(copy, None, 0)
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, scratch, Gio.File.new_for_path(path), None)
    scratch.delete()

image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path({content!r}))
source = image.get_layers()[0]
procedure = Gimp.get_pdb().lookup_procedure("plug-in-nst-style-transfer")
config = procedure.create_config()
config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
config.set_property("image", image)
config.set_core_object_array("drawables", [source])
for name, value in {settings!r}.items():
    config.set_property(name, Gio.File.new_for_path(value) if name == "style-file" else value)
result = procedure.run(config)
layers = image.get_layers()
if len(layers) > 1:
    export(layers[0], {output!r})
size = next(spec for spec in procedure.get_arguments() if spec.name == "size")
print("NST-RESULT " + json.dumps({{"status": result.index(0).value_nick, "layers": [l.get_name() for l in layers],
                                  "error": result.index(1) if result.length() > 1 else None,
                                  "menu": procedure.get_menu_paths(), "label": procedure.get_menu_label(),
                                  "presets": Gimp.param_spec_choice_get_choice(
                                      procedure.find_argument("preset")).list_nicks(),
                                  "size": [size.minimum, size.maximum, size.get_default_value()]}}, default=str))
"""


@pytest.fixture(scope="session")
def gimp_chroot() -> Path:
    """The trixie chroot with GIMP 3, built on first use (about a minute with a nearby mirror)."""
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.fail("the GIMP test needs root and debootstrap: run .ci/gimp-check.sh, which installs them")
    subprocess.run(["sh", str(REPO / ".ci" / "tools" / "build_gimp_chroot.sh"), str(CHROOT)], check=True)
    return CHROOT


def run_gimp(chroot: Path, workdir: Path, batch: str, env: dict[str, str], timeout: int = 600) -> str:
    """Run ``gimp-console-3.0`` in the chroot in a private mount namespace (mounts vanish when it exits)."""
    binds = sorted({str(REPO), sys.prefix, sys.base_prefix, str(workdir)})
    mounts = [f"mount -t proc proc {chroot}/proc", f"mount --rbind /dev {chroot}/dev"]
    for path in binds:
        mounts += [f"mkdir -p {chroot}{path}", f"mount --bind {path} {chroot}{path}"]
    script = workdir / "batch.py"
    script.write_text(batch)
    gimp = ["gimp-console-3.0", "--no-interface", "--no-data", "--no-fonts", "--quit",
            "--batch-interpreter=python-fu-eval", "-b", f"exec(open({str(script)!r}).read())"]
    command = ["chroot", str(chroot), "/usr/bin/env", "-i", *(f"{key}={value}" for key, value in env.items()), *gimp]
    inner = " && ".join(mounts) + " && exec " + shlex.join(command)
    finished = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
                              capture_output=True, text=True, timeout=timeout)
    return finished.stdout + finished.stderr


def install_plug_in(home: Path, settings: dict[str, object]) -> None:
    """Install as the README says: copy the folder, make it executable, put settings in GIMP's environ folder."""
    gimp_dir = home / ".config" / "GIMP" / "3.0"
    shutil.copytree(PLUGINS / "gimp" / PLUG_IN, gimp_dir / "plug-ins" / PLUG_IN)
    (gimp_dir / "plug-ins" / PLUG_IN / f"{PLUG_IN}.py").chmod(0o755)
    (gimp_dir / "environ").mkdir()
    (gimp_dir / "environ" / "nst-bot.env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))


def result_line(log: str) -> dict:
    lines = [line for line in log.splitlines() if line.startswith("NST-RESULT ")]
    assert lines, f"GIMP printed no result; its log:\n{log[-4000:]}"
    return json.loads(lines[-1].removeprefix("NST-RESULT "))


def test_plug_in_adds_a_styled_layer(gimp_chroot, tmp_path_factory, vgg_weights):
    workdir = tmp_path_factory.getbasetemp()  # holds vgg_weights too, so one bind mount serves both
    case = Path(tmp_path_factory.mktemp("gimp"))
    home = case / "home"
    install_plug_in(home, {"NST_BOT": NST_BOT, "NST_WEIGHTS": vgg_weights})
    content, style, output = case / "content.png", case / "style.png", case / "styled.png"
    make_content(96, 64).save(content)
    make_style().save(style)
    env = {"HOME": home, "NST_CACHE_DIR": case / "cache", "OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}
    settings = {"style-file": str(style), "size": 48, "iterations": 8}
    log = run_gimp(gimp_chroot, workdir, BATCH.format(content=str(content), output=str(output),
                                                     settings=settings), {k: str(v) for k, v in env.items()})
    result = result_line(log)
    assert result["status"] == "success", log[-4000:]
    assert result["layers"] == ["Background styled (style.png)", "Background"]  # new layer above the source
    assert result["menu"] == ["<Image>/Filters/Artistic"] and result["label"] == "Neural Style Transfer…"
    spec = option_spec("size")
    assert result["size"] == [spec.low, spec.high, spec.default]  # the dialog's bounds are the engine's
    assert result["presets"] == ["none", "mosaic", "waves", "embers", "cubist", "pointillist"]  # nst-bot's built-ins
    styled = Image.open(output).convert("RGB")
    assert styled.size == (96, 64)  # scaled back onto the source layer
    before = style_distance(vgg_weights, make_content(96, 64), make_style())
    assert style_distance(vgg_weights, styled, make_style()) < 0.8 * before


def test_plug_in_reports_nst_bot_errors(gimp_chroot, tmp_path_factory):
    workdir = tmp_path_factory.getbasetemp()
    case = Path(tmp_path_factory.mktemp("gimp-error"))
    install_plug_in(case / "home", {"NST_BOT": NST_BOT})  # and no weights anywhere
    content = case / "content.png"
    make_content(64, 64).save(content)
    env = {"HOME": case / "home", "NST_CACHE_DIR": case / "empty-cache", "PATH": "/usr/bin:/bin"}
    settings = {"style-file": str(content), "size": 32, "iterations": 1}
    log = run_gimp(gimp_chroot, workdir, BATCH.format(content=str(content), output=str(case / "none.png"),
                                                     settings=settings), {k: str(v) for k, v in env.items()})
    result = result_line(log)
    assert result["status"] == "execution-error" and len(result["layers"]) == 1
    assert "nst-bot fetch-assets" in result["error"]  # the engine's own sentence reaches GIMP
