"""Image input and output with Pillow: safe decoding, colour-mode normalisation, resizing, encoding.

Torch-free, so the bot can validate uploads in its own process. Policy for inputs:
- EXIF orientation is applied, so the picture is upright as phones show it;
- animated images (GIF, APNG, WebP) use their first frame;
- transparency is composited onto white (the output is an opaque RGB picture);
- 16-bit and float greyscale are rescaled to 8 bits; CMYK, palette, YCbCr, LAB, HSV become RGB;
- the pixel count is checked from the header, before any pixel is decoded, so decompression bombs are refused.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

ImageSource = Union[str, Path, bytes, BinaryIO, Image.Image]

DEFAULT_MAX_PIXELS = 40_000_000
SUPPORTED = "PNG, JPEG, WebP, GIF, BMP or TIFF"


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, read without decoding pixels."""

    format: str
    width: int
    height: int
    mode: str
    frames: int


def probe_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> ImageInfo:
    """Read only the header: refuses non-images and oversize images before any decode."""
    with _open(source, what, max_pixels) as image:
        return _check_header(image, max_pixels, what)


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> Image.Image:
    """Decode ``source`` into an upright 8-bit RGB image, or raise :class:`ImageError` saying why not."""
    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source))
    with _open(source, what, max_pixels) as image:
        _check_header(image, max_pixels, what)
        try:
            image.seek(0)
            image.load()
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright)
        except Image.DecompressionBombError:
            raise ImageError(f"The {what} is too large to process safely.") from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise ImageError(f"The {what} is corrupt or truncated and could not be decoded ({_short(error)}).") from None


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
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel cap in _check_header; silence Pillow's softer warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(stream)
    except Image.DecompressionBombError as error:
        # Pillow refuses absurd headers itself (over twice its own cap) before ours can run; report the size.
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f" ({int(pixels.group(1)) / 1e6:,.0f} megapixels)" if pixels else ""
        raise ImageError(f"The {what} is too large{size}; the limit is {max_pixels / 1e6:g} megapixels.") from None
    except UnidentifiedImageError:
        raise ImageError(f"The {what} is not an image that can be read; please use {SUPPORTED}.") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"The {what} could not be read ({_short(error)}).") from None


def _check_header(image: Image.Image, max_pixels: int, what: str) -> ImageInfo:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"The {what} has no pixels ({width}×{height}).")
    if width * height > max_pixels:
        raise ImageError(f"The {what} is too large: {width}×{height} pixels; the limit is "
                         f"{max_pixels / 1e6:g} megapixels.")
    return ImageInfo(image.format or "unknown", width, height, image.mode, getattr(image, "n_frames", 1))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency is composited onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _to_8bit_grey(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # CMYK, L, 1, YCbCr, LAB, HSV: Pillow's conversions (Adobe CMYK is pre-inverted)


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    """Rescale high-bit-depth greyscale by its true range (16-bit → /257; float and 32-bit by min/max)."""
    import numpy as np

    data = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        scaled = data / 257.0
    else:
        low, high = float(data.min()), float(data.max())
        if image.mode == "I" and low >= 0 and high <= 255:
            scaled = data
        elif image.mode == "I" and low >= 0 and high <= 65535:
            scaled = data / 257.0
        else:
            scaled = (data - low) * (255.0 / (high - low)) if high > low else np.zeros_like(data)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


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


def encode_image(image: Image.Image, max_bytes: int | None = None) -> tuple[bytes, str]:
    """PNG when it fits in ``max_bytes``, otherwise the best-quality WebP or JPEG that fits.

    Returns the bytes and the file extension. Raises :class:`ImageError` if nothing fits.
    """
    png = _encode(image, "PNG", optimize=True)
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


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Save by extension (.png, .jpg/.jpeg, .webp); unknown extensions are refused clearly."""
    path = Path(path)
    formats = {".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95}),
               ".webp": ("WEBP", {"quality": 95})}
    if path.suffix.lower() not in formats:
        raise ImageError(f"Cannot write {path.name!r}: use a .png, .jpg or .webp file name.")
    fmt, params = formats[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    image.save(tmp, fmt, **params)
    tmp.replace(path)
    return path


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "…"
