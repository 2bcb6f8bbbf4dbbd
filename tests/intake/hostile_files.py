"""Hostile uploads, generated at test time (no binary files in the repository).

Each builder returns the bytes an attacker would upload. They stay inside the bot's byte and pixel caps and
aim at the decoder instead: work per byte (many JPEG scans, many frames or pages), memory per pixel (16-bit
greyscale), or formats nst-bot does not read (PostScript, PSD, TGA, JPEG 2000).
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
from PIL import Image


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    channels = len(Image.new(mode, (1, 1)).getbands())
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(axis=2) if channels == 1 else pixels, mode)


# --- work per byte -------------------------------------------------------------------------------------

def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _eob_runs(blocks: int) -> bytes:
    """Entropy-coded data for one AC scan saying "every block is empty", as EOB runs of up to 32767 blocks.

    Uses the Huffman table from :func:`many_scan_jpeg`: symbol ``n << 4`` (EOBn) has the 4-bit code ``n``.
    """
    bits = []
    while blocks:
        exponent = min(blocks, 32767).bit_length() - 1
        run = min(blocks, (1 << (exponent + 1)) - 1)
        bits.append(format(exponent, "04b") + (format(run - (1 << exponent), f"0{exponent}b") if exponent else ""))
        blocks -= run
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = int(stream, 2).to_bytes(len(stream) // 8, "big") if stream else b""
    return data.replace(b"\xff", b"\xff\x00")


def many_scan_jpeg(width: int, height: int, scans: int) -> bytes:
    """A valid greyscale progressive JPEG followed by ``scans`` extra AC scans of a few bytes each.

    libjpeg walks every block of the picture once per scan, so the cost grows with scans × pixels while the
    file grows by about 20 bytes per scan.
    """
    jpeg = encoded(noise(width // 16 or 1, height // 16 or 1, "L").resize((width, height)), "JPEG",
                   progressive=True, quality=75)
    # AC table 1: the 15 EOB-run symbols (0x00, 0x10, ..., 0xE0), each with a 4-bit code.
    table = _segment(0xC4, bytes([0x11]) + bytes([0, 0, 0, 15] + [0] * 12) + bytes(n << 4 for n in range(15)))
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    scan = _segment(0xDA, bytes([1, 1, 0x01, 1, 63, 0x00])) + _eob_runs(blocks)
    end = jpeg.rindex(b"\xff\xd9")
    return jpeg[:end] + table + scan * scans + jpeg[end:]


def multi_picture_jpeg(first: bytes, second: bytes) -> bytes:
    """``first`` with an APP2 "MPF" index naming it and ``second`` (appended), so Pillow opens it as an MPO.

    The index is a little TIFF directory: version, number of pictures, and one 16-byte entry per picture
    (attributes, size, offset from the index's own TIFF header).
    """
    entries_at = 8 + 2 + 3 * 12 + 4
    app2_size = 2 + 2 + 4 + entries_at + 32
    index_start = 2 + 4 + 4  # SOI, the APP2 marker and length, "MPF\0"
    tags = ((0xB000, 7, 4, b"0100"), (0xB001, 4, 1, struct.pack(">I", 2)),
            (0xB002, 7, 32, struct.pack(">I", entries_at)))
    directory = struct.pack(">H", len(tags)) + b"".join(struct.pack(">HHI", tag, kind, count) + value
                                                        for tag, kind, count, value in tags)
    entries = (struct.pack(">IIIHH", 0x20030000, len(first) + app2_size, 0, 0, 0)
               + struct.pack(">IIIHH", 0x00010001, len(second), len(first) + app2_size - index_start, 0, 0))
    index = b"MPF\x00MM\x00\x2a" + struct.pack(">I", 8) + directory + struct.pack(">I", 0) + entries
    return first[:2] + _segment(0xE2, index) + first[2:] + second


def many_scan_mpo(width: int, height: int, scans: int) -> bytes:
    """:func:`many_scan_jpeg` dressed as a two-picture MPO (which Pillow reports as format "MPO", not "JPEG")."""
    return multi_picture_jpeg(many_scan_jpeg(width, height, scans), encoded(noise(8, 8), "JPEG"))


def jpeg_in_tiff(width: int = 32, height: int = 32) -> bytes:
    """A TIFF whose strips are JPEG-coded (libtiff decodes them, outside the JPEG rules)."""
    return encoded(noise(width, height), "TIFF", compression="jpeg")


def rle_loop_bmp(width: int, height: int) -> bytes:
    """An 8-bit run-length BMP of one pixel then an end-of-line code per row (4 bytes a row): Pillow's
    run-length decoder is pure Python and pads each row a byte at a time, so the cost is the pixel count."""
    rows = (b"\x01\x00\x00\x00" * height) + b"\x00\x01"
    palette = bytes(range(256)) * 4
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    offset = 14 + len(header) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + header + palette + rows


def chunk_flood_png(chunks: int) -> bytes:
    """A small valid PNG with ``chunks`` empty private ancillary chunks before its pixels (12 bytes each)."""
    png = encoded(noise(8, 8), "PNG")
    flood = struct.pack(">I", 0) + b"flOd" + struct.pack(">I", zlib.crc32(b"flOd"))
    header_end = 8 + 25  # signature, IHDR
    return png[:header_end] + flood * chunks + png[header_end:]


def many_page_tiff(pages: int, size: int = 4) -> bytes:
    """A TIFF of ``pages`` tiny greyscale pages sharing one strip, written by hand (about 100 bytes a page).

    Counting its pages is quadratic in Pillow; reading the first is instant.
    """
    pixels = bytes(range(size * size))
    ifd_size = 2 + 8 * 12 + 4
    first_ifd = 8 + len(pixels)
    tags = [(256, 3, size), (257, 3, size), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8),
            (278, 3, size), (279, 4, len(pixels))]
    ifds = []
    for page in range(pages):
        following = first_ifd + (page + 1) * ifd_size if page + 1 < pages else 0
        entries = b"".join(struct.pack("<HHII" if kind == 4 else "<HHIH2x", tag, kind, 1, value)
                           for tag, kind, value in tags)
        ifds.append(struct.pack("<H", len(tags)) + entries + struct.pack("<I", following))
    return b"II*\x00" + struct.pack("<I", first_ifd) + pixels + b"".join(ifds)


def many_frame_gif(frames: int, size: int = 4) -> bytes:
    """A GIF of ``frames`` tiny frames, written by hand (Pillow would merge identical frames)."""
    header = b"GIF89a" + struct.pack("<HHBBB", size, size, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, size, size, 0) + _gif_pixels(size * size)
    return header + frame * frames + b"\x3b"


def _gif_pixels(count: int) -> bytes:
    """LZW data (minimum code size 2) for ``count`` pixels of colour 0.

    A clear code before every two pixels keeps the code table small, so every code stays 3 bits wide.
    """
    codes = [code for _ in range(0, count, 2) for code in (4, 0, 0)][: count + (count + 1) // 2] + [5]
    value, filled = 0, 0
    for code in codes:
        value |= code << filled
        filled += 3
    data = value.to_bytes((filled + 7) // 8, "little")
    blocks = (data[start:start + 255] for start in range(0, len(data), 255))
    return bytes([2]) + b"".join(bytes([len(block)]) + block for block in blocks) + b"\x00"


# --- memory per pixel ----------------------------------------------------------------------------------

def sixteen_bit_grey_png(width: int, height: int) -> bytes:
    """A 16-bit greyscale PNG of flat grey: compresses to a few tens of KB however many pixels it holds."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + b"\x80\x00" * width
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def flat_grey_png(width: int, height: int) -> bytes:
    """An 8-bit greyscale PNG of one colour: about 0.5 MB for 168 megapixels, 168 MB once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(b"\x00" + bytes(width)) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def float_tiff(width: int, height: int) -> bytes:
    """A 32-bit float greyscale TIFF with a ramp (needs rescaling by its true range)."""
    ramp = np.linspace(-1.0, 3.0, width * height, dtype=np.float32).reshape(height, width)
    return encoded(Image.fromarray(ramp, "F"), "TIFF")


# --- formats nst-bot does not read ---------------------------------------------------------------------

def endless_postscript() -> bytes:
    """EPS whose program never ends: Ghostscript, where installed, would spin on it forever."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
            b"{ 1 1 add pop } loop\nshowpage\n%%EOF\n")


def psd(width: int = 8, height: int = 8) -> bytes:
    """A minimal Photoshop file: one greyscale channel, raw pixels."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 1, height, width, 8, 1)
    return header + struct.pack(">I", 0) * 3 + struct.pack(">H", 0) + b"\x80" * (width * height)


def refused_formats() -> dict[str, bytes]:
    """Files in formats Pillow can read but nst-bot refuses, by name (those Pillow can write here)."""
    small = noise(16, 16)
    files = {"postscript": endless_postscript(), "psd": psd(), "tga": encoded(small, "TGA"),
             "dds": encoded(small.convert("RGBA"), "DDS"), "ppm": encoded(small, "PPM"),
             "ico": encoded(small, "ICO"), "sgi": encoded(small, "SGI"), "pcx": encoded(small, "PCX")}
    try:
        files["jpeg2000"] = encoded(small, "JPEG2000")
    except (OSError, KeyError):  # Pillow built without OpenJPEG
        pass
    return files


# --- damaged files -------------------------------------------------------------------------------------

def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * keep))]


def mutations(data: bytes, count: int, seed: int = 0, flips: int = 8) -> list[bytes]:
    """``count`` copies of ``data``, each with a few bytes past the signature set at random."""
    generator = random.Random(seed)
    found = []
    for _ in range(count):
        mutant = bytearray(data)
        for _ in range(flips):
            mutant[generator.randrange(8, len(mutant))] = generator.randrange(256)
        found.append(bytes(mutant))
    return found


# --- awkward but legitimate ----------------------------------------------------------------------------

def exif_rotated_jpeg() -> bytes:
    """40×20 stored, shown 20×40 (EXIF orientation 6); a white strip on the stored left edge shows on top."""
    wide = Image.new("RGB", (40, 20), (10, 10, 10))
    wide.paste((250, 250, 250), (0, 0, 10, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(wide, "JPEG", exif=exif.tobytes(), quality=95)


def cmyk_jpeg() -> bytes:
    return encoded(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG")


def palette_with_transparency_png() -> bytes:
    """Index 0 is transparent (becomes white), index 1 is green."""
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette.paste(0, (0, 0, 4, 8))
    return encoded(palette, "PNG", transparency=0)
