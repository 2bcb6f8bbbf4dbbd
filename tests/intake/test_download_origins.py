"""Which attachment links are downloaded at all: the scheme, host and port must be allowed, not the host alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.config import BotConfig, Config
from bot.intake.download import RequestError, check_attachment

DISCORD = Config()  # Discord's CDN hosts, the default
STANDIN = Config(bot=BotConfig(allowed_attachment_hosts=("http://127.0.0.1:8080",)))
REFUSED = "does not come from Discord's file servers, so it was not downloaded"


def upload(url: str) -> SimpleNamespace:
    return SimpleNamespace(url=url, filename="a.png", size=1000, content_type="image/png")


@pytest.mark.parametrize("url", ["https://cdn.discordapp.com/attachments/1/2/a.png",
                                 "https://CDN.discordapp.com:443/attachments/1/2/a.png",
                                 "https://media.discordapp.net/external/x/a.png"])
def test_discords_own_links_are_allowed(url: str) -> None:
    check_attachment(upload(url), DISCORD, "content image")


@pytest.mark.parametrize("url", ["http://cdn.discordapp.com/attachments/1/2/a.png",  # plain http
                                 "https://cdn.discordapp.com:6379/a.png",  # another service on the CDN's host
                                 "https://cdn.discordapp.com:99999/a.png",  # no such port
                                 "ftp://cdn.discordapp.com/a.png",
                                 "https://cdn.discordapp.com.evil.example/a.png"])
def test_another_scheme_or_port_on_an_allowed_host_is_refused(url: str) -> None:
    with pytest.raises(RequestError, match=REFUSED):
        check_attachment(upload(url), DISCORD, "content image")


def test_an_origin_entry_allows_exactly_that_scheme_host_and_port() -> None:
    check_attachment(upload("http://127.0.0.1:8080/files/a.png"), STANDIN, "style image")
    for url in ("http://127.0.0.1:8081/files/a.png", "https://127.0.0.1:8080/files/a.png", "http://127.0.0.1/a.png"):
        with pytest.raises(RequestError, match=REFUSED):
            check_attachment(upload(url), STANDIN, "style image")
