"""Opening images with errors that name the item and the file instead of a PIL traceback."""

from __future__ import annotations

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


def load_image(item: Any, index: int) -> Image.Image:
    """A fully decoded RGB image from a PIL image or a path; truncated or non-image files are refused."""
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if not isinstance(item, (str, Path)):
        raise BadInputError(
            f"image item {index} is a {type(item).__name__}; pass a PIL image or a path to an image file"
        )
    path = Path(item)
    if not path.is_file():
        raise BadInputError(f"image item {index}: file {str(path)!r} does not exist or is not a file")
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here and not mid-batch
            return to_rgb(img)
    except UnidentifiedImageError as exc:
        raise BadInputError(f"image item {index}: {str(path)!r} is not an image file PIL can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"image item {index}: {str(path)!r} is corrupt or truncated ({exc})") from exc
