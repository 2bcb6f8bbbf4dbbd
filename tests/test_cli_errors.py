"""Operational failures a user can cause end in one clear line on stderr and exit status 2, never a traceback.

Each case runs the real ``nst-bot`` in a subprocess, as an admin would. "Discord unreachable" is a closed
loopback port; the healthcheck cases run the real bot against the loopback Discord stand-in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.face.harness import TOKEN, BotProcess, write_config
from tests.conftest import REPO, make_content, make_style

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING) ")  # the bot's own log format


def nst_bot(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("NST_", "DISCORD_"))}
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=180,
                          cwd=cwd or REPO, env={**environment, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The error line, after checking exit status 2, no traceback, and nothing else on stderr but log lines
    (``run`` logs "logging in" before it can learn that Discord is out of reach)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("nst-bot: error: "), result.stderr
    assert result.stderr.rstrip().endswith(lines[0])
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A work folder with images, an empty weights cache, and no NST_* or DISCORD_* settings."""
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path / "cache"))
    make_content(90, 60).save(tmp_path / "content.png")
    make_style().save(tmp_path / "style.png")
    return tmp_path


def run_config(folder: Path, weights: Path | None, *, data_dir: Path | None = None, extra: str = "") -> Path:
    """A config whose Discord is a closed loopback port: reaching the network at all is visible as an error."""
    port = closed_port()
    config = folder / "config.toml"
    weights_line = f'weights = "{weights}"' if weights else ""
    config.write_text(f"""
[discord]
api_base = "http://127.0.0.1:{port}/api/v10"
gateway_url = "ws://127.0.0.1:{port}/gateway"
[engine]
{weights_line}
[storage]
data_dir = "{data_dir or folder / 'data'}"
{extra}
""")
    return config


def run(config: Path, folder: Path, token: str = TOKEN, **env: str) -> subprocess.CompletedProcess:
    environment = {"NST_CACHE_DIR": str(folder / "cache"), **env}
    if token:
        environment["DISCORD_TOKEN"] = token
    return nst_bot("run", "--config", str(config), env=environment)


# nst-bot run --------------------------------------------------------------------------------------------

def test_run_with_discord_out_of_reach(admin: Path, vgg_weights: Path) -> None:
    config = run_config(admin, vgg_weights)
    line = one_line_error(run(config, admin), "cannot reach Discord at http://127.0.0.1:",
                          "the server refused the connection", "[discord] api_base")
    assert TOKEN not in line


def test_run_with_an_api_base_that_is_not_discord(admin: Path, vgg_weights: Path, empty_web_server: str) -> None:
    config = run_config(admin, vgg_weights)
    config.write_text(config.read_text().replace(re.search(r"http://127.0.0.1:\d+", config.read_text()).group(0),
                                                 empty_web_server, 1))
    line = one_line_error(run(config, admin), f"Discord at {empty_web_server}/api/v10 answered HTTP 404",
                          "check [discord] api_base")
    assert "<" not in line  # not the server's HTML error page


def test_run_with_a_data_dir_under_a_file(admin: Path, vgg_weights: Path) -> None:
    (admin / "blocker").write_text("a file where a folder should be")
    config = run_config(admin, vgg_weights, data_dir=admin / "blocker" / "data")
    one_line_error(run(config, admin), "cannot use [storage] data_dir", "blocker is a file, not a folder")


def test_run_without_weights_says_so_before_connecting_and_names_runs_options(admin: Path) -> None:
    line = one_line_error(run(run_config(admin, None), admin), "No VGG19 weights found", "nst-bot fetch-assets",
                          "NST_WEIGHTS", "`[engine] weights`")
    assert "cannot reach Discord" not in line  # it never tried: the closed port would have said so
    assert "(or pass --weights)" not in line


def test_run_with_configured_weights_that_are_missing_names_the_setting(admin: Path) -> None:
    one_line_error(run(run_config(admin, admin / "nowhere.pth"), admin), "nowhere.pth",
                   "(from `[engine] weights` in the config) does not exist")


def test_run_with_a_corrupt_weights_cache_says_so_before_connecting(admin: Path, vgg_weights: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from nst_engine.weights import CACHE_FILE, install_weights

    monkeypatch.setenv("NST_CACHE_DIR", str(admin / "cache"))
    install_weights(vgg_weights, origin="test")
    with (admin / "cache" / CACHE_FILE).open("r+b") as cached:
        cached.seek(2000)
        cached.write(b"\0" * 64)
    one_line_error(run(run_config(admin, None), admin), "corrupt (checksum mismatch)", "fetch-assets")


@pytest.mark.parametrize("source", ["file", "variable"])
@pytest.mark.parametrize("token, problem", [(TOKEN + "\nsecond-line", "more than one line"),
                                            (TOKEN + " extra", "spaces or control characters")])
def test_run_with_a_malformed_token_never_shows_it(admin: Path, vgg_weights: Path, source: str, token: str,
                                                   problem: str) -> None:
    config = run_config(admin, vgg_weights)
    if source == "file":
        (admin / "token").write_text(token + "\n")
        result = run(config, admin, token="", DISCORD_TOKEN_FILE=str(admin / "token"))
        expected = "DISCORD_TOKEN_FILE"
    else:
        result = run(config, admin, token=token)
        expected = "DISCORD_TOKEN"
    line = one_line_error(result, expected, problem, "only the bot token")
    assert "second-line" not in result.stderr and TOKEN not in result.stderr and "extra" not in line


# nst-bot stylize: the output path is checked before the job runs -----------------------------------------

def stylize(folder: Path, weights: Path, output: str, *extra: str, **env: str) -> subprocess.CompletedProcess:
    return nst_bot("stylize", "content.png", "--style", "style.png", "-o", output, "--weights", str(weights),
                   "--size", "32", "--iterations", "2", *extra, cwd=folder, env={"NST_CACHE_DIR": str(folder), **env})


def test_stylize_into_a_folder_that_does_not_exist(admin: Path, vgg_weights: Path) -> None:
    missing = admin / "nonexistent" / "dir" / "out.png"
    one_line_error(stylize(admin, vgg_weights, str(missing)), f"{missing.parent} does not exist")
    assert not missing.parent.exists()  # nothing was created, and no job ran (no progress lines on stderr)


def test_stylize_into_a_path_under_a_file(admin: Path, vgg_weights: Path) -> None:
    (admin / "notes.txt").write_text("a file")
    one_line_error(stylize(admin, vgg_weights, "notes.txt/out.png"), "notes.txt is a file, not a folder")


def test_stylize_onto_an_existing_folder(admin: Path, vgg_weights: Path) -> None:
    (admin / "results.png").mkdir()
    one_line_error(stylize(admin, vgg_weights, "results.png"), "it is a folder", "results.png/result.png")


def test_stylize_into_a_folder_it_cannot_write(admin: Path, vgg_weights: Path) -> None:
    if os.geteuid() == 0:
        folder = Path("/sys")  # sysfs refuses new files even to root
    else:
        folder = admin / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    one_line_error(stylize(admin, vgg_weights, str(folder / "out.png")), f"the folder {folder} is not writable")


@pytest.mark.parametrize("weights, expected", [
    ("bad.pth", ["bad.pth is not a readable PyTorch weights file", "torchvision vgg19 .pth"]),
    ("a-folder", ["is a folder; name the .pth file itself"]),
])
def test_stylize_with_a_weights_path_that_is_not_weights(admin: Path, weights: str, expected: list[str]) -> None:
    (admin / "bad.pth").write_text("not weights")
    (admin / "a-folder").mkdir()
    one_line_error(stylize(admin, admin / weights, "out.png"), *expected)


def test_stylize_with_nst_weights_pointing_nowhere(admin: Path) -> None:
    result = nst_bot("stylize", "content.png", "--style", "style.png", "-o", "out.png", cwd=admin,
                     env={"NST_WEIGHTS": str(admin / "missing.pth"), "NST_CACHE_DIR": str(admin)})
    one_line_error(result, "missing.pth' (from NST_WEIGHTS) does not exist")


def test_a_local_preset_whose_file_is_missing(admin: Path, vgg_weights: Path) -> None:
    config = admin / "config.toml"
    config.write_text('[[presets]]\nname = "mine"\nfile = "presets/mine.png"\n')
    result = nst_bot("stylize", "content.png", "--preset", "mine", "-o", "out.png", "--weights", str(vgg_weights),
                     "--config", str(config), cwd=admin)
    line = one_line_error(result, "preset 'mine'", "presets/mine.png does not exist", "fix `file`")
    assert "fetch-assets" not in line
    listing = nst_bot("presets", "--config", str(config))
    assert listing.returncode == 0 and "presets/mine.png does not exist" in listing.stdout
    assert "fetch-assets" not in listing.stdout


# The config file -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("[limits]\nmax_queue = 0\n", "[limits] max_queue must be from 1 to 10000, not 0."),
    ("[limits]\nmax_size = 0\n", "[limits] max_size must be from 16 to 4096, not 0."),
    ("[limits]\nmax_jobs_per_user = 0\n", "[limits] max_jobs_per_user must be from 1 to 1000, not 0."),
    ("[limits]\nmax_iterations = 0\n", "[limits] max_iterations must be from 1 to 5000, not 0."),
    ("[limits]\nmax_upload_bytes = 10\n", "[limits] max_upload_bytes must be from 1000 to 1000000000"),
    ("[storage]\nretention_days = 0\n", "[storage] retention_days must be from 0.01 to 3650, not 0."),
    ("[bot]\nprogress_interval = 0\n", "[bot] progress_interval must be from 0.1 to 3600, not 0."),
    ("[engine]\nbatch_size = 17\n", "[engine] batch_size must be from 1 to 16, not 17."),
    ("[limits]\nmax_queue = 2.5\n", "[limits] max_queue must be a whole number, not 2.5."),
    ('[discord]\nguild_ids = ["general"]\n', "[discord] guild_ids must list server ids"),
])
def test_out_of_range_settings_are_refused_with_their_range(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    one_line_error(nst_bot("presets", "--config", str(config)), expected)


def test_a_bot_pod_outside_its_process_count_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[discord]\nshards = 4\n")
    result = nst_bot("presets", "--config", str(config), env={"NST_BOT_PROCESS": "2", "NST_BOT_PROCESSES": "2"})
    one_line_error(result, "NST_BOT_PROCESS ('2') must be from 0 to NST_BOT_PROCESSES ('2') - 1")


def test_quoted_guild_ids_are_read_as_numbers(tmp_path: Path) -> None:
    from bot.config import load_config

    config = tmp_path / "config.toml"
    config.write_text('[discord]\nguild_ids = ["123456789012345678", 42]\n')
    assert load_config(config).discord.guild_ids == (123456789012345678, 42)


@pytest.mark.parametrize("make, expected", [
    (lambda path: path.mkdir(), "is a folder; name the .toml file itself"),
    (lambda path: path.write_bytes(b"\xff\xfe[engine]\n"), "is not UTF-8 text"),
])
def test_an_unreadable_config_file(tmp_path: Path, make, expected: str) -> None:
    make(tmp_path / "config.toml")
    one_line_error(nst_bot("presets", "--config", str(tmp_path / "config.toml")), expected)


# fetch-assets without the network ------------------------------------------------------------------------

class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def empty_web_server(tmp_path: Path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("where, reason", [
    ("closed port", "the server refused the connection"),
    ("no such host", "the host name does not resolve"),  # .invalid never resolves (RFC 6761)
    ("404", "HTTP 404"),
])
def test_fetch_assets_offline_names_the_offline_routes(admin: Path, empty_web_server: str, where: str,
                                                       reason: str) -> None:
    base = {"closed port": f"http://127.0.0.1:{closed_port()}", "no such host": "http://weights.nst-bot.invalid",
            "404": empty_web_server}[where]
    config = admin / "config.toml"
    config.write_text(f'[engine]\nweights_url = "{base}/vgg19-dcbb9e9d.pth"\n')
    line = one_line_error(nst_bot("fetch-assets", "--config", str(config), env={"NST_CACHE_DIR": str(admin)}),
                          reason, "NST_WEIGHTS", "`[engine] weights`", "`[engine] weights_url`", "mirror")
    assert "resume" not in line and "Errno" not in line


# healthcheck after the bot is gone ----------------------------------------------------------------------

def healthcheck(config: Path) -> subprocess.CompletedProcess:
    return nst_bot("healthcheck", "--config", str(config))


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_healthcheck_fails_at_once_when_the_bot_has_exited(standin, tmp_path: Path, vgg_weights: Path,
                                                           how: str) -> None:
    config = write_config(tmp_path, standin, vgg_weights)
    bot = BotProcess(config, tmp_path / "bot.log").start()
    try:
        bot.wait_until("connected as")
        heartbeat = tmp_path / "data" / "heartbeat.json"
        bot_pid = bot.process.pid
        standin.wait_for(lambda: heartbeat.exists() and json.loads(heartbeat.read_text())["pid"] == bot_pid, 30,
                         "the heartbeat")
        assert healthcheck(config).returncode == 0
        assert bot.stop(signal_for(how)) == (0 if how == "stopped" else -9)
    finally:
        bot.stop()
    check = healthcheck(config)
    assert check.returncode == 1, check.stdout
    expected = "stopped at" if how == "stopped" else "is no longer running"
    assert check.stdout.startswith("unhealthy: the bot (pid ") and expected in check.stdout


def signal_for(how: str) -> int:
    import signal

    return signal.SIGTERM if how == "stopped" else signal.SIGKILL


@pytest.fixture()
def standin():
    from tests.face.discord_standin import StandinThread

    with StandinThread() as running:
        yield running


def test_the_heartbeat_survives_write_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A data folder that cannot take the heartbeat (here: a file in its place) is logged once and retried; the
    heartbeat comes back when the folder does."""
    from bot.ops import health

    monkeypatch.setattr(health, "HEARTBEAT_EVERY", 0.1)
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    path = blocker / "heartbeat.json"

    async def scenario() -> dict:
        beating = asyncio.create_task(health.heartbeat_loop(path, lambda: {"connected": True}))
        await asyncio.sleep(0.5)
        assert not beating.done()
        blocker.unlink()
        for _ in range(100):
            await asyncio.sleep(0.05)
            if path.exists():
                break
        beating.cancel()
        return json.loads(path.read_text())

    with caplog.at_level(logging.INFO, logger="nst-bot"):
        beat = asyncio.run(scenario())
    assert beat["pid"] == os.getpid() and beat["state"] == "running"
    warnings = [r for r in caplog.records if "cannot write the heartbeat" in r.getMessage()]
    assert len(warnings) == 1 and any("written again" in r.getMessage() for r in caplog.records)


# Command-line mistakes: one line with the fix, not argparse's usage block -------------------------------

@pytest.mark.parametrize("args, fragments", [
    (["stylize", "photo.jpg", "--preset", "waves"],
     ["nst-bot stylize needs -o/--output", "e.g. `nst-bot stylize photo.jpg -o out.png --preset waves`"]),
    (["stylize", "photo.jpg", "-o", "out.png", "--preserve-colors", "sepia"],
     ["--preserve-colors cannot be 'sepia'", "choose from none, luminance, histogram"]),
    # 300 is taken as the content image, photo.jpg left over: the misspelt flag is what to fix
    (["stylize", "--sise", "300", "photo.jpg", "-o", "out.png"],
     ["nst-bot stylize has no option --sise (did you mean --size?)"]),
    (["stylize", "photo.jpg", "-o", "out.png", "--strenght=2"],
     ["has no option --strenght (did you mean --strength?)"]),
    (["stylise", "photo.jpg"], ["unknown command 'stylise' (did you mean stylize?)", "choose from run, stylize"]),
    ([], ["give a command, e.g. `nst-bot stylize` or `nst-bot run`"]),
    (["stylize", "photo.jpg", "-o", "out.png", "--size"], ["argument --size: expected one argument",
                                                             "see `nst-bot stylize --help`"]),
    (["stylize", "-o", "out.png", "--preset", "waves"], ["give the content image", "--from RESULT.png"]),
])
def test_command_line_mistakes_are_one_line_with_the_fix(admin: Path, args: list[str], fragments: list[str]) -> None:
    result = nst_bot(*args, cwd=admin)
    one_line_error(result, *fragments)
    assert "usage:" not in result.stderr


# nst-bot run loads the weights before it connects -------------------------------------------------------

def test_run_with_weights_that_do_not_load_says_so_before_connecting(admin: Path) -> None:
    (admin / "weights.pth").write_text("a text file, not weights")
    line = one_line_error(run(run_config(admin, admin / "weights.pth"), admin),
                          "weights.pth is not a readable PyTorch weights file")
    assert "cannot reach Discord" not in line  # it never tried: the closed port would have said so


# Operators' settings: the log level and the engine's CPU threads ---------------------------------------

@pytest.mark.parametrize("setting, env, logged", [("", {}, True), ('[bot]\nlog_level = "warning"\n', {}, False),
                                                  ("", {"NST_LOG_LEVEL": "ERROR"}, False),
                                                  ('[bot]\nlog_level = "warning"\n', {"NST_LOG_LEVEL": "info"}, True)])
def test_the_log_level_setting(admin: Path, vgg_weights: Path, setting: str, env: dict[str, str],
                               logged: bool) -> None:
    result = run(run_config(admin, vgg_weights, extra=setting), admin, **env)
    one_line_error(result, "cannot reach Discord")
    assert (" INFO    " in result.stderr) is logged, result.stderr  # discord.py logs "logging in" at INFO


@pytest.mark.parametrize("text, env, expected", [
    ('[bot]\nlog_level = "loud"\n', {}, "[bot] log_level (or NST_LOG_LEVEL) must be one of debug, info, warning, "
                                        "error, not 'loud'."),
    ("", {"NST_LOG_LEVEL": "verbose"}, "not 'verbose'"),
    ("[engine]\nthreads = -1\n", {}, "[engine] threads must be from 0 to 1024, not -1."),
])
def test_operator_settings_out_of_range(tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    one_line_error(nst_bot("presets", "--config", str(config), env=env), expected)


@pytest.mark.parametrize("threads, expected", [(1, "on cpu, 1 thread)"), (2, "on cpu, 2 threads)")])
def test_engine_threads_setting(admin: Path, vgg_weights: Path, threads: int, expected: str) -> None:
    (admin / "config.toml").write_text(f"[engine]\nthreads = {threads}\n")
    result = stylize(admin, vgg_weights, "out.png", "--config", str(admin / "config.toml"))
    assert result.returncode == 0 and expected in result.stdout, result.stderr
