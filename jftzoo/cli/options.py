"""Options every data-reading command shares (`data check`, `train`, `predict`, `bench`, `tune`, `explain`)."""

from __future__ import annotations

import click

IMAGE_ROOT_OPTION = click.option(
    "--image-root", type=click.Path(exists=True, file_okay=False),
    help="Folder the manifest's image paths are relative to (csv, jsonl). [the manifest's folder]")
ON_BAD_OPTION = click.option(
    "--on-bad", type=click.Choice(["error", "skip"]), default="error", show_default=True,
    help="Bad records (an unreadable image, an unknown label...): stop with the list, or leave them out and "
         "list them.")
ON_MISSING_OPTION = click.option(
    "--on-missing", type=click.Choice(["keep", "skip", "error"]), default="keep", show_default=True,
    help="Posts without text or without an image: keep them (the model reads a learned \"missing\" embedding "
         "for the absent one), leave them out and list them, or stop with the list.")
