"""The checks made before any download, at their edges (found by mutation testing, docs/mutation-report.md):
the declared type as Discord sends it (parameters, capitals, none at all), SVG refused, a size at the limit
allowed, and what each refusal tells the member."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from bot.config import Config, LimitsConfig
from bot.intake.download import RequestError, _origin, check_attachment

CONFIG = Config(limits=LimitsConfig(max_upload_bytes=10_000_000))
CDN = "https://cdn.discordapp.com/attachments/1/2/"


def upload(content_type: str | None, size: int = 1000, filename: str = "a.png") -> SimpleNamespace:
    return SimpleNamespace(url=CDN + "a.png", filename=filename, size=size, content_type=content_type)


@pytest.mark.parametrize("content_type", ["image/png", "image/PNG; charset=binary", " image/jpeg ;x=y", None, ""])
def test_images_and_undeclared_types_pass(content_type) -> None:
    check_attachment(upload(content_type), CONFIG, "content image")


def test_another_type_is_refused_naming_the_file_and_its_type() -> None:
    expected = "The content image `my\\_page.html` is not an image (text/html); please upload a "
    with pytest.raises(RequestError, match=re.escape(expected)):
        check_attachment(upload("Text/HTML; charset=utf-8", filename="my_page.html"), CONFIG, "content image")


@pytest.mark.parametrize("content_type", ["image/svg+xml", "image/SVG+XML; charset=utf-8"])
def test_svg_drawings_are_refused(content_type) -> None:
    with pytest.raises(RequestError, match=re.escape("The style image is an SVG drawing; please upload a ")):
        check_attachment(upload(content_type), CONFIG, "style image")


def test_the_size_limit_is_inclusive_and_the_refusal_names_both_sizes() -> None:
    check_attachment(upload("image/png", size=10_000_000), CONFIG, "content image")
    with pytest.raises(RequestError, match=re.escape("The content image is 12.5 MB; the limit is 10.0 MB.")):
        check_attachment(upload("image/png", size=12_500_000), CONFIG, "content image")


def test_an_origin_is_a_lower_case_host_with_its_port_and_nothing_without_a_host() -> None:
    assert _origin("https://CDN.DiscordApp.com/a.png") == ("https", "cdn.discordapp.com", 443)
    assert _origin("HTTP://127.0.0.1:8080/a") == ("http", "127.0.0.1", 8080)
    for url in ("https://:443/a.png", "https:///a.png", "file:///etc/passwd", "mailto:someone", "https://x:99999/"):
        assert _origin(url) is None, url
