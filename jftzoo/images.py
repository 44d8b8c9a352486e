"""Opening images with errors that name the item and the file instead of a PIL traceback."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from jftzoo.errors import BadInputError


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with transparent images (emoji, logos) composited onto white instead of their hidden pixels."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode(path: Path) -> tuple[Image.Image | None, str | None]:
    """(fully decoded image, None) or (None, why not): one place that decides what a bad image is,
    shared by `load_image` and the dataset checks."""
    if not path.exists():
        return None, "image file is missing"
    if not path.is_file():
        return None, "image path is not a file"
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that: both are one clear reason here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now, so a truncated file fails here and not mid-batch
                return img, None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return None, (f"image is too large to decode safely ({exc}); Pillow's limit is {Image.MAX_IMAGE_PIXELS:,} "
                      "pixels (a decompression bomb, or a huge image: resize it)")
    except UnidentifiedImageError:
        return None, "not an image file (PIL cannot identify it)"
    except PermissionError:
        return None, "image file is not readable (permission denied)"
    except (OSError, SyntaxError, ValueError) as exc:
        return None, f"image is truncated or corrupt ({exc})"


def load_image(item: Any, index: int) -> Image.Image:
    """A fully decoded RGB image from a PIL image or a path; truncated or non-image files are refused."""
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if not isinstance(item, (str, Path)):
        raise BadInputError(
            f"image item {index} is a {type(item).__name__}; pass a PIL image or a path to an image file"
        )
    img, reason = decode(Path(item))
    if img is None:
        raise BadInputError(f"image item {index}: {str(item)!r}: {reason}")
    return to_rgb(img)
