"""Files that reach a costly decoder through a container the old checks did not look at (MPO, JPEG inside
TIFF), and chunk or run-length floods refused from a cheap scan before the real decode."""

from __future__ import annotations

import io

import pytest
from PIL import Image, JpegImagePlugin

from nst_engine.errors import ImageError
from nst_engine.images import MAX_JPEG_SCANS, MAX_PNG_CHUNKS, load_image
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


def test_a_large_run_length_bmp_is_refused_from_its_header_and_a_small_one_decoded() -> None:
    with pytest.raises(ImageError, match="run-length compressed BMP over 1,000,000 pixels"):
        load_image(hostile_files.rle_loop_bmp(20000, 1250))  # 6 KB, 25 megapixels of Python loop
    small = load_image(hostile_files.rle_loop_bmp(40, 30))
    assert small.size == (40, 30)


def test_a_png_chunk_flood_is_refused_before_pillow_parses_it() -> None:
    with pytest.raises(ImageError, match=r"abnormal number of pieces \(over 20,000 chunks\)"):
        load_image(hostile_files.chunk_flood_png(MAX_PNG_CHUNKS + 1))
    assert load_image(hostile_files.chunk_flood_png(1000)).size == (8, 8)  # many chunks, but not a flood
