"""Images scaled to the size they are printed at: a logo stored once small, a large one scaled once per process."""

from __future__ import annotations

import hashlib
import io
import threading

from PIL import Image, ImageOps, UnidentifiedImageError

# The logo is printed 1.6 cm high: 200 pixels are over 300 dpi; 600 across leaves room for a wide one (3:1).
LOGO_MAX_SIZE = (600, 200)
FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
JPEG_QUALITY = 90
# A logo is a few hundred pixels across: anything over 25 megapixels is refused before it is decoded.
MAX_PIXELS = 25_000_000
CACHE_SIZE = 16

_cache: dict[tuple[str, str, tuple[int, int]], tuple[bytes, str]] = {}
_lock = threading.Lock()


def readable(content: bytes) -> bool:
    """Whether the content is a whole PNG or JPEG of at most MAX_PIXELS: decoded to the end, so a file of another
    kind named .png, a truncated or damaged one, and a decompression bomb are all refused before anything is stored."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            if image.format not in FORMATS.values() or image.width * image.height > MAX_PIXELS:
                return False
            image.load()
            return True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False


def _printable(image: Image.Image) -> Image.Image:
    """The image upright (a phone's EXIF orientation applied) in a mode PNG and JPEG keep as printed."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scaled to 8 bits, not clipped to white
        return image.point(lambda value: value / 256).convert("L")
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        return image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
    return image


def fit(content: bytes, mimetype: str, max_size: tuple[int, int] = LOGO_MAX_SIZE) -> tuple[bytes, str]:
    """(content, mimetype) of the image scaled down to fit `max_size`, aspect kept; as given when it already fits.

    A JPEG stays a JPEG; anything else becomes a PNG (transparency kept). An image Pillow cannot read is returned
    as given (uploads are checked by `readable` first).
    """
    try:
        with Image.open(io.BytesIO(content)) as image:
            if image.width <= max_size[0] and image.height <= max_size[1] and mimetype in FORMATS:
                return content, mimetype
            image.load()
            image = _printable(image)
            image.thumbnail(max_size, Image.Resampling.LANCZOS)
            output = io.BytesIO()
            if mimetype == "image/jpeg" and image.mode in ("RGB", "L"):
                image.save(output, format="JPEG", quality=JPEG_QUALITY)
                return output.getvalue(), "image/jpeg"
            image.save(output, format="PNG", optimize=True)
            return output.getvalue(), "image/png"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return content, mimetype


def fit_cached(content: bytes, mimetype: str, max_size: tuple[int, int] = LOGO_MAX_SIZE) -> tuple[bytes, str]:
    """`fit`, done once per process for the same bytes (keyed by their SHA-256): a logo stored large before uploads
    were scaled costs one scaling, not one per PDF."""
    key = (hashlib.sha256(content).hexdigest(), mimetype, max_size)
    with _lock:
        cached = _cache.get(key)
    if cached is None:
        cached = fit(content, mimetype, max_size)
        with _lock:
            if len(_cache) >= CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
            _cache[key] = cached
    return cached
