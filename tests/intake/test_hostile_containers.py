"""Files that reach a costly decoder through a container the old checks did not look at (MPO, JPEG inside
TIFF), and chunk or run-length floods refused from a cheap scan before the real decode."""

from __future__ import annotations

import io

import pytest
from PIL import Image, JpegImagePlugin

from nst_engine.errors import ImageError
from nst_engine.images import MAX_JPEG_SCANS, load_image
from tests.intake import hostile_files


def test_a_jpeg_opened_as_mpo_gets_the_scan_cap() -> None:
    hostile = hostile_files.many_scan_mpo(256, 256, MAX_JPEG_SCANS + 50)
    with Image.open(io.BytesIO(hostile)) as opened:
        assert opened.format == "MPO"  # the file really is what the attack relies on
    with pytest.raises(ImageError, match="abnormal number of scans"):
        load_image(hostile, long_side=64)


def test_an_ordinary_mpo_is_decoded_at_a_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    drafts = []
    original = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: drafts.append(size) or original(self, mode, size))
    photo = hostile_files.encoded(hostile_files.noise(32, 32).resize((1024, 768)), "JPEG")
    picture = load_image(hostile_files.multi_picture_jpeg(photo, photo), long_side=128)
    assert picture.size == (128, 96)
    assert drafts == [(128, 96)]


def test_jpeg_coded_tiff_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ImageError, match="TIFF holding JPEG-compressed pixels") as refused:
        load_image(hostile_files.jpeg_in_tiff())
    assert "ordinary JPEG or PNG" in str(refused.value)
