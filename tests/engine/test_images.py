"""Image input: every bad-input case gets a clear ImageError; every colour mode becomes sensible RGB."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from nst_engine.errors import ImageError
from nst_engine.images import MAX_JPEG_SCANS, encode_image, load_image, probe_image, resize_long_side, save_image
from tests.intake import hostile_files
from tests.conftest import png_bytes


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` (patched IHDR with a valid CRC)."""
    data = bytearray(png_bytes(Image.new("L", (8, 8))))
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize("payload, message", [
    (b"hello, this is not an image\n", "is not an image that can be read"),
    (b"", "is not an image that can be read"),
    (b"GIF89a" + b"\x00" * 3, "is not an image that can be read"),
])
def test_non_images_are_refused_clearly(payload, message):
    with pytest.raises(ImageError, match=message) as error:
        load_image(payload, what="style image")
    assert str(error.value).startswith("The style image")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is not a file"):
        load_image(tmp_path)


def test_truncated_png_is_reported_as_corrupt():
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = png_bytes(noisy)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_from_the_header_alone():
    bomb = bomb_png(60_000, 60_000)
    assert len(bomb) < 200
    with pytest.raises(ImageError, match=r"too large \(3,600 megapixels\); the limit is 40 megapixels"):
        probe_image(bomb)
    with pytest.raises(ImageError, match=r"too large: 9000×9000 pixels; the limit is 40 megapixels"):
        probe_image(bomb_png(9000, 9000))
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb, max_pixels=1_000_000)


def test_probe_reads_header_without_decoding():
    info = probe_image(png_bytes(Image.new("RGBA", (30, 20))))
    assert (info.format, info.width, info.height, info.mode) == ("PNG", 30, 20, "RGBA")


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = load_image(buffer.getvalue())
    assert image.mode == "RGB" and image.getpixel((8, 8))[0] > 200 and image.getpixel((8, 8))[2] < 50


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    image = load_image(png_bytes(rgba))
    assert image.getpixel((1, 1)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (0, 0, 255)
    half = load_image(png_bytes(Image.new("LA", (2, 2), (0, 128))))
    assert half.getpixel((0, 0)) == (127, 127, 127)


def test_palette_with_transparency():
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette.info["transparency"] = 0
    palette.putpixel((0, 0), 0)
    image = load_image(png_bytes(palette))
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((1, 1)) == (0, 200, 0)


def test_sixteen_bit_greyscale_is_rescaled():
    data = np.array([[0, 32896, 65535]], dtype=np.uint16)
    image = load_image(png_bytes(Image.frombytes("I;16", (3, 1), data.astype("<u2").tobytes())))
    assert [image.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


@pytest.mark.parametrize("mode, fill, rgb", [
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)), ("L", 77, (77, 77, 77)), ("1", 1, (255, 255, 255)), ("1", 0, (0, 0, 0)),
    ("YCbCr", (76, 85, 255), (254, 0, 0)),  # pure red, as Pillow's conversion rounds it
    ("F", 3.5, (0, 0, 0)),  # a float picture is stretched over its own range: a flat one has none
])
def test_other_modes_become_rgb(mode, fill, rgb):
    image = load_image(Image.new(mode, (5, 3), fill))
    assert image.mode == "RGB" and image.size == (5, 3)
    assert all(abs(got - want) <= 1 for got, want in zip(image.getpixel((4, 2)), rgb)), image.getpixel((4, 2))
    assert image.getextrema() == tuple((value, value) for value in image.getpixel((0, 0)))  # every pixel alike


def test_float_and_32_bit_greyscale_are_stretched_over_their_range():
    floats = Image.frombytes("F", (3, 1), np.array([[-1.0, 0.5, 2.0]], dtype="<f4").tobytes())
    assert [load_image(floats).getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]
    wide = Image.frombytes("I", (3, 1), np.array([[0, 1000, 65535]], dtype="<i4").tobytes())
    assert [load_image(wide).getpixel((x, 0))[0] for x in range(3)] == [0, 4, 255]  # 16-bit range: / 257


def test_cmyk_jpeg_file_decodes():
    buffer = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(buffer, "JPEG")
    red, green, blue = load_image(buffer.getvalue()).getpixel((4, 4))
    assert red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied():
    tall = Image.new("RGB", (40, 20), (10, 10, 10))
    tall.paste((250, 250, 250), (0, 0, 10, 20))  # a white strip on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    tall.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    upright = load_image(buffer.getvalue())
    assert upright.size == (20, 40)
    assert upright.getpixel((10, 2))[0] > 200  # the left strip is now at the top


def test_resize_keeps_aspect_ratio():
    assert resize_long_side(Image.new("RGB", (300, 200)), 96).size == (96, 64)
    assert resize_long_side(Image.new("RGB", (10, 1000)), 50).size == (1, 50)


def test_encode_prefers_png_and_falls_back_to_lossy_within_budget():
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    data, ext = encode_image(noisy)
    assert ext == "png" and data.startswith(b"\x89PNG")
    budget = len(data) // 2
    lossy, ext = encode_image(noisy, max_bytes=budget)
    assert ext in ("webp", "jpg") and len(lossy) <= budget
    assert Image.open(io.BytesIO(lossy)).size == (128, 128)
    with pytest.raises(ImageError, match="does not fit"):
        encode_image(noisy, max_bytes=100)


def test_save_image_by_extension(tmp_path):
    image = Image.new("RGB", (6, 4), (1, 2, 3))
    assert Image.open(save_image(image, tmp_path / "a" / "out.webp")).format == "WEBP"
    with pytest.raises(ImageError, match="use a .png, .jpg or .webp"):
        save_image(image, tmp_path / "out.bmp")


@pytest.mark.parametrize("name", sorted(hostile_files.refused_formats()))
def test_formats_outside_the_allow_list_are_refused_unopened(name):
    with pytest.raises(ImageError, match="not an image that can be read; please use PNG, JPEG, WebP, GIF, BMP or TIFF"):
        load_image(hostile_files.refused_formats()[name], what="content image")


def test_jpeg_with_too_many_scans_is_refused_before_decoding():
    ordinary = hostile_files.many_scan_jpeg(64, 64, 0)
    assert load_image(ordinary).size == (64, 64)
    assert load_image(hostile_files.many_scan_jpeg(64, 64, MAX_JPEG_SCANS - 20)).size == (64, 64)
    with pytest.raises(ImageError, match=f"abnormal number of scans \\(over {MAX_JPEG_SCANS}\\)"):
        load_image(hostile_files.many_scan_jpeg(64, 64, MAX_JPEG_SCANS))


def test_only_the_first_page_or_frame_is_read():
    tiff = hostile_files.many_page_tiff(3000)
    gif = hostile_files.many_frame_gif(3000)
    for data in (tiff, gif):
        image = load_image(data)
        assert image.size == (4, 4) and image.mode == "RGB"


@pytest.mark.parametrize("mode, values, expected", [
    ("I;16", np.array([[0, 32896, 65535]]), [0, 128, 255]),
    ("I", np.array([[-70000, 0, 2 ** 30]]), [0, 0, 255]),
    ("I", np.array([[0, 100, 255]]), [0, 100, 255]),
    ("F", np.array([[-1.0, 1.0, 3.0]]), [0, 128, 255]),
])
def test_high_depth_greyscale_is_rescaled_by_its_range(mode, values, expected):
    dtype = {"I;16": "<u2", "I": "<i4", "F": "<f4"}[mode]
    image = load_image(png_bytes(Image.frombytes(mode, (3, 1), values.astype(dtype).tobytes())) if mode == "I;16"
                       else Image.frombytes(mode, (3, 1), values.astype(dtype).tobytes()))
    assert [image.getpixel((x, 0))[0] for x in range(3)] == expected


def test_float_tiff_is_rescaled_in_strips():
    image = load_image(hostile_files.float_tiff(300, 5000))
    column = [image.getpixel((150, y))[0] for y in (0, 2500, 4999)]
    assert column[0] == 0 and 120 <= column[1] <= 135 and column[2] == 255


def test_long_side_shrinks_while_decoding():
    photo = hostile_files.encoded(hostile_files.noise(1200, 800), "JPEG")
    assert load_image(photo, long_side=300).size == (300, 200)
    upright = load_image(hostile_files.exif_rotated_jpeg(), long_side=20)
    assert upright.size == (10, 20) and upright.getpixel((5, 1))[0] > 200
    grey = load_image(hostile_files.sixteen_bit_grey_png(400, 100), long_side=100)
    assert grey.size == (100, 25) and grey.getpixel((50, 10)) == (128, 128, 128)


def test_aspect_ratio_is_checked_from_the_header():
    with pytest.raises(ImageError, match=r"too long and thin \(2000×20\)"):
        load_image(bomb_png(2000, 20), max_aspect=20)


@pytest.mark.parametrize("mutant", hostile_files.mutations(hostile_files.encoded(hostile_files.noise(32, 32),
                                                                                   "PNG"), 40, seed=3)
                         + hostile_files.mutations(hostile_files.exif_rotated_jpeg(), 40, seed=4)
                         + hostile_files.mutations(hostile_files.encoded(hostile_files.noise(32, 32), "TIFF"),
                                                   40, seed=5))
def test_mutated_files_decode_or_fail_with_an_image_error(mutant):
    try:
        image = load_image(mutant)
    except ImageError as error:
        assert str(error).startswith("The image ") and "Error" not in str(error)
    else:
        assert image.mode == "RGB"
