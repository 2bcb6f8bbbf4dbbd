"""Image input and output with Pillow: safe decoding, colour-mode normalisation, resizing, encoding.

Torch-free. Policy for inputs, which may come from strangers:
- only PNG, JPEG, WebP, GIF, BMP and TIFF are opened (Pillow knows dozens of formats, some of which hand the
  file to other programs such as Ghostscript);
- the pixel count is checked from the header, before any pixel is decoded, so decompression bombs are refused;
  JPEGs with far more scans than any encoder writes are refused too (each scan costs a pass over the picture);
- PNGs with more chunks than any encoder writes are refused from a scan of the chunk headers, before Pillow
  parses them one by one; run-length BMPs (decoded by Pillow in pure Python, a byte at a time) only up to
  ``MAX_RLE_BMP_PIXELS``;
- only the first frame or page is decoded, and frames are never counted;
- EXIF orientation is applied, so the picture is upright as phones show it;
- transparency is composited onto white (the output is an opaque RGB picture);
- 16-bit, 32-bit and float greyscale are rescaled to 8 bits a strip at a time; CMYK, palette, YCbCr, LAB, HSV
  become RGB;
- messages say what is wrong with the file in words, never a decoder's internal error text.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Mapping, Union

from PIL import Image, ImageOps, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

from .errors import ImageError

ImageSource = Union[str, Path, bytes, BinaryIO, Image.Image]

DEFAULT_MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
SUPPORTED = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# Encoders write 1 scan (baseline) to about 10-20 (progressive); decoding costs one pass over the picture per
# scan, so a file of tiny scans is a denial of service (about 4 ms per scan at 25 megapixels here).
MAX_JPEG_SCANS = 100
START_OF_SCAN = b"\xff\xda"
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
STRIP_PIXELS = 1 << 20  # high-depth conversion works on strips of about this many pixels
JPEG_IN_TIFF = ("jpeg", "tiff_jpeg")  # Pillow's names for the TIFF compressions that hold JPEG scans
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Encoders split the pixels into chunks of 8 KB or more: a 10 MB upload holds about a thousand. An empty chunk
# is 12 bytes, so a flood of them puts 800,000 in 10 MB, each parsed by Pillow in Python.
MAX_PNG_CHUNKS = 20_000
MAX_RLE_BMP_PIXELS = 1_000_000  # about a fifth of a CPU second in Pillow's run-length decoder
BMP_RLE = (1, 2)  # BI_RLE8, BI_RLE4


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, read without decoding pixels."""

    format: str
    width: int
    height: int
    mode: str


def probe_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> ImageInfo:
    """Read only the header: refuses non-images and oversize images before any decode."""
    with _open(source, what, max_pixels) as image:
        return _check_header(image, max_pixels, what)


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image",
               long_side: int | None = None, max_aspect: float | None = None) -> Image.Image:
    """Decode ``source`` into an upright 8-bit RGB image, or raise :class:`ImageError` saying why not.

    With ``long_side``, a larger picture is scaled down to it, never up (JPEGs are decoded at a reduced scale where
    libjpeg can). With ``max_aspect``, a picture longer than that many times its width (or the reverse) is
    refused from its header.
    """
    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source))
    with _open(source, what, max_pixels) as image:
        info = _check_header(image, max_pixels, what)
        if max_aspect is not None and max(info.width, info.height) > max_aspect * min(info.width, info.height):
            raise ImageError(f"The {what} is too long and thin ({info.width}×{info.height}); please use one at "
                             f"most {max_aspect:g} times longer than wide.")
        try:
            if long_side is not None and _is_jpeg(image) and max(image.size) > long_side:
                image.draft(image.mode, scaled_size(*image.size, long_side))
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            picture = _to_8bit_grey(image) if image.mode in HIGH_DEPTH_MODES else image
            shrink = long_side is not None and max(picture.size) > long_side
            if shrink and picture.mode == "L":
                picture = resize_long_side(picture, long_side)  # cheaper before the RGB copy
            picture = to_rgb(picture)
            return resize_long_side(picture, long_side) if shrink else picture
        except MemoryError:
            raise ImageError(f"The {what} needs more memory to decode than this bot allows.") from None
        except Exception:  # noqa: BLE001 - any failure inside a decoder means a damaged or hostile file
            raise ImageError(f"The {what} is corrupt or truncated and could not be decoded; please export "
                             "it again.") from None


def _open(source: ImageSource, what: str, max_pixels: int) -> Image.Image:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"The {what} file {str(path)!r} does not exist.")
        if not path.is_file():
            raise ImageError(f"The {what} path {str(path)!r} is not a file.")
        stream: BinaryIO = path.open("rb")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(source))
    else:
        stream = source
    if _png_chunks(stream) > MAX_PNG_CHUNKS:
        raise ImageError(f"The {what} is a PNG split into an abnormal number of pieces (over {MAX_PNG_CHUNKS:,} "
                         "chunks), so it was not decoded; please save it again as an ordinary PNG or JPEG.")
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel cap in _check_header; silence Pillow's softer warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as error:
        # Pillow refuses absurd headers itself (over twice its own cap) before ours can run; report the size.
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f" ({int(pixels.group(1)) / 1e6:,.0f} megapixels)" if pixels else ""
        raise ImageError(f"The {what} is too large{size}; the limit is {max_pixels / 1e6:g} megapixels.") from None
    except UnidentifiedImageError:
        raise ImageError(f"The {what} is not an image that can be read; please use {SUPPORTED}.") from None
    except MemoryError:
        raise ImageError(f"The {what} needs more memory to decode than this bot allows.") from None
    except Exception:  # noqa: BLE001 - a header parser failing in any way means a damaged file
        raise ImageError(f"The {what} could not be read: its header is damaged.") from None
    if image.format == "TIFF" and image.info.get("compression") in JPEG_IN_TIFF:
        image.close()
        raise ImageError(f"The {what} is a TIFF holding JPEG-compressed pixels, which this bot does not decode; "
                         "please upload it as an ordinary JPEG or PNG.")
    if image.format == "BMP" and image.info.get("compression") in BMP_RLE and \
            image.width * image.height > MAX_RLE_BMP_PIXELS:
        image.close()
        raise ImageError(f"The {what} is a run-length compressed BMP over {MAX_RLE_BMP_PIXELS:,} pixels, "
                         "which this bot does not decode; please upload it as a PNG or JPEG.")
    if _is_jpeg(image) and _jpeg_scans(stream) > MAX_JPEG_SCANS:
        image.close()
        raise ImageError(f"The {what} is a JPEG with an abnormal number of scans (over {MAX_JPEG_SCANS}), so it "
                         "was not decoded; please save it again as an ordinary JPEG or PNG.")
    return image


def _is_jpeg(image: Image.Image) -> bool:
    """Whether libjpeg decodes it: a JPEG, or a JPEG that Pillow opened as another format (MPO)."""
    return isinstance(image, JpegImagePlugin.JpegImageFile)


def _png_chunks(stream: BinaryIO) -> int:
    """How many chunks a PNG holds, counted from their length fields up to one past the cap (0 for a file that
    is not a PNG); the stream is left where it was."""
    position = stream.tell()
    count = 0
    try:
        if stream.read(8) != PNG_SIGNATURE:
            return 0
        while count <= MAX_PNG_CHUNKS and len(header := stream.read(8)) == 8:
            count += 1
            if header[4:] == b"IEND":
                break
            stream.seek(int.from_bytes(header[:4], "big") + 4, io.SEEK_CUR)
        return count
    finally:
        stream.seek(position)


def _jpeg_scans(stream: BinaryIO) -> int:
    """How many start-of-scan markers the file holds (an upper bound on its scans), reading it in chunks."""
    position = stream.tell()
    stream.seek(0)
    count, tail = 0, b""
    while chunk := stream.read(1 << 20):
        data = tail + chunk
        count += data.count(START_OF_SCAN)
        tail = data[-1:]
        if data.endswith(START_OF_SCAN):  # counted already; do not count its last byte again
            tail = b""
    stream.seek(position)
    return count


def _check_header(image: Image.Image, max_pixels: int, what: str) -> ImageInfo:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"The {what} has no pixels ({width}×{height}).")
    if width * height > max_pixels:
        raise ImageError(f"The {what} is too large: {width}×{height} pixels; the limit is "
                         f"{max_pixels / 1e6:g} megapixels.")
    return ImageInfo(image.format or "unknown", width, height, image.mode)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency is composited onto white."""
    if image.mode in HIGH_DEPTH_MODES:
        image = _to_8bit_grey(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # CMYK, L, 1, YCbCr, LAB, HSV: Pillow's conversions (Adobe CMYK is pre-inverted)


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    """Rescale high-bit-depth greyscale by its true range (16-bit → /257; float and 32-bit by min/max).

    Works a strip of rows at a time in float32, so a 25-megapixel picture never needs a full-size float copy.
    """
    import numpy as np

    low, high = image.getextrema()
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and 255 < high <= 65535):
        low, scale = 0.0, 1 / 257
    elif image.mode == "I" and low >= 0 and high <= 255:
        low, scale = 0.0, 1.0
    else:
        scale = 255.0 / (high - low) if high > low else 0.0
    width, height = image.size
    grey = Image.new("L", image.size)
    rows = max(1, STRIP_PIXELS // width)
    for top in range(0, height, rows):
        strip = np.asarray(image.crop((0, top, width, min(height, top + rows))), dtype=np.float32)
        scaled = np.clip(np.rint((strip - np.float32(low)) * np.float32(scale)), 0, 255).astype(np.uint8)
        grey.paste(Image.fromarray(scaled, "L"), (0, top))
    return grey


def scaled_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) with the long side ``long_side`` and the same aspect ratio (each side at least 1 px)."""
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_long_side(image: Image.Image, size: int) -> Image.Image:
    """Scale so the long side is ``size`` pixels, keeping the aspect ratio."""
    new_size = scaled_size(*image.size, size)
    if new_size == image.size:
        return image
    return image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode_image(image: Image.Image, max_bytes: int | None = None,
                 text: Mapping[str, str] | None = None) -> tuple[bytes, str]:
    """PNG (with ``text`` chunks: the recipe) when it fits in ``max_bytes``, otherwise the best-quality WebP or
    JPEG that fits.

    Returns the bytes and the file extension. Raises :class:`ImageError` if nothing fits.
    """
    png = _encode(image, "PNG", optimize=True, **({"pnginfo": png_text(text)} if text else {}))
    if max_bytes is None or len(png) <= max_bytes:
        return png, "png"
    for quality in (95, 90, 85, 80, 70, 60, 50):
        for fmt, ext in (("WEBP", "webp"), ("JPEG", "jpg")):
            data = _encode(image, fmt, quality=quality, **({"method": 4} if fmt == "WEBP" else {"optimize": True}))
            if len(data) <= max_bytes:
                return data, ext
    raise ImageError(f"The result does not fit in {max_bytes / 1e6:.1f} MB even as a compressed image.")


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def save_image(image: Image.Image, path: str | Path, text: Mapping[str, str] | None = None) -> Path:
    """Save by extension (.png, .jpg/.jpeg, .webp); unknown extensions are refused clearly.

    ``text`` (a result's recipe) goes into a PNG as text chunks; the other formats have no place for it."""
    path = Path(path)
    formats = {".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95}),
               ".webp": ("WEBP", {"quality": 95})}
    if path.suffix.lower() not in formats:
        raise ImageError(f"Cannot write {path.name!r}: use a .png, .jpg or .webp file name.")
    fmt, params = formats[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    if text and fmt == "PNG":
        params = {"pnginfo": png_text(text)}
    image.save(tmp, fmt, **params)
    tmp.replace(path)
    return path


def png_text(text: Mapping[str, str]) -> PngImagePlugin.PngInfo:
    """tEXt chunks, or iTXt (UTF-8) where a value is not Latin-1, so file names in any script survive."""
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    return info
