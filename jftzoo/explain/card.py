"""A PNG card per explained record (matplotlib): the image with its region attributions, the words
shaded by theirs, the class probabilities and the modality shares, so one glance says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CMAP = "PiYG"  # green: pushes towards the predicted class; pink: pushes away from it
WIDTH, HEIGHT, DPI = 12.0, 6.0, 110  # inches, dots per inch: 1320 x 660 px


def _image(image: Any) -> Any:
    from jftzoo.images import load_image

    return load_image(image, 0)


NO_TEXT = '(no text: the model read its learned "missing text" embedding)'


def card_figure(rx: Any, image: Any, vision: Any = None) -> Any:
    """The card as a matplotlib Figure (Agg): `rx` a RecordExplanation, `image` its image (path or PIL),
    `vision` the vision encoder (where its eval crop lies on the image)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    FigureCanvasAgg(fig)  # a renderer to measure words with, and no pyplot state
    fig.patch.set_facecolor("white")
    ax_img = fig.add_axes((0.02, 0.1, 0.42, 0.78))
    ax_img.set_axis_off()
    if image is None:  # a post without an image: say so where it would be
        w = h = 1
        ax_img.add_patch(Rectangle((0, 0), 1, 1, fill=True, fc="0.94", ec="0.6", ls="--", lw=1))
        ax_img.text(0.5, 0.5, "no image\n(the model read its learned\n\"missing image\" embedding)",
                    ha="center", va="center", fontsize=11, color="0.3")
        ax_img.set_xlim(0, 1)
        ax_img.set_ylim(1, 0)
    else:
        img = _image(image)
        w, h = img.size
        ax_img.imshow(np.asarray(img), extent=(0, w, h, 0))  # aspect "equal": the image keeps its proportions
    if rx.regions is not None and image is not None:
        regions = np.asarray(rx.regions, dtype=float)
        left, top, right, bottom = vision.view_box((w, h)) if vision is not None else (0, 0, w, h)
        lim = float(np.abs(regions).max()) or 1.0
        ax_img.imshow(regions, cmap=CMAP, vmin=-lim, vmax=lim, alpha=0.45, interpolation="bilinear",
                      extent=(left, right, bottom, top))
        if (left, top, right, bottom) != (0, 0, w, h):
            ax_img.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, ls="--", lw=1, ec="black"))
        ax_img.set_xlim(min(0, left), max(w, right))
        ax_img.set_ylim(max(h, bottom), min(0, top))
    ax_img.set_title("image regions (integrated gradients from a grey image)" if image is not None else "image",
                     fontsize=10, loc="left")

    truth = f"   true: {rx.true_label}" if rx.true_label else ""
    fig.text(0.47, 0.93, f"predicted: {rx.label} (p = {rx.probs[rx.label]:.2f}){truth}", fontsize=13,
             weight="bold", va="center")
    fig.text(0.47, 0.87, f"record {rx.id}", fontsize=9, color="0.35", va="center")
    has_text = bool((rx.text or "").strip())
    shown = (rx.words or [(rx.text, 0.0)]) if has_text else [(word, 0.0) for word in NO_TEXT.split()]
    _words(fig, shown, (0.47, 0.82, 0.51, 0.30))
    _probabilities(fig.add_axes((0.55, 0.16, 0.16, 0.24)), rx.probs, rx.label)
    _shares(fig, fig.add_axes((0.78, 0.30, 0.19, 0.10)), rx)
    y = 0.06
    for modality, c in rx.completeness.items():
        fig.text(0.47, y, f"completeness, {modality}: attributions sum {c['attribution_sum']:+.3f}, logit change "
                 f"{c['logit_difference']:+.3f}", fontsize=7.5, color="0.35")
        y -= 0.03
    return fig


def _words(fig: Any, words: list[tuple[str, float]], box: tuple[float, float, float, float]) -> None:
    """Words left to right, wrapped at the box's width, each on a background shaded by its attribution."""
    import matplotlib as mpl

    x0, y0, width, height = box
    cmap = mpl.colormaps[CMAP]
    lim = max((abs(a) for _, a in words), default=0.0) or 1.0
    renderer = fig.canvas.get_renderer()
    fig_w = fig.get_size_inches()[0] * fig.dpi
    x, y = x0, y0
    size = 11
    line = 0.058
    for word, attr in words:
        colour = cmap(0.5 + 0.5 * attr / lim)
        t = fig.text(x, y, word, fontsize=size, va="top", ha="left",
                     bbox={"boxstyle": "round,pad=0.15", "fc": colour, "ec": "none"})
        extent = t.get_window_extent(renderer)
        if x > x0 and (extent.x1 / fig_w) > x0 + width:  # wrap before this word
            x, y = x0, y - line
            t.set_position((x, y))
            extent = t.get_window_extent(renderer)
        if y < y0 - height:  # out of room: say so instead of drawing over the charts
            t.set_text("…")
            break
        x = extent.x1 / fig_w + 0.006
    fig.text(x0, y0 - height - 0.02, "words: green pushes towards the predicted class, pink away (integrated "
             "gradients from padding)", fontsize=7.5, color="0.35", va="top")


def _probabilities(ax: Any, probs: dict[str, float], label: str) -> None:
    names = list(probs)
    values = [probs[n] for n in names]
    ax.barh(range(len(names)), values, color=["#2b7a3d" if n == label else "#9a9a9a" for n in names])
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.tick_params(axis="x", labelsize=8)
    for i, v in enumerate(values):
        ax.text(min(v + 0.02, 0.8), i, f"{v:.2f}", va="center", fontsize=8)
    ax.set_title("class probabilities", fontsize=10, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _shares(fig: Any, ax: Any, rx: Any) -> None:
    text, image = rx.modality_shares["text"], rx.modality_shares["image"]
    ax.barh([0], [text], color="#3b6fb6")
    ax.barh([0], [image], left=[text], color="#e08a2c")
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title("modality shares (Shapley)", fontsize=10, loc="left")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.text(0.78, 0.22, f"text   {text:.0%}   (φ = {rx.shapley['text']:+.3f})", color="#2f5f9e", fontsize=9)
    fig.text(0.78, 0.185, f"image  {image:.0%}   (φ = {rx.shapley['image']:+.3f})", color="#b45f0a", fontsize=9)
    if rx.modality_weights:
        fig.text(0.78, 0.145, f"the head's own weights: text {rx.modality_weights['text']:.2f}, "
                 f"image {rx.modality_weights['image']:.2f}", fontsize=7.5, color="0.35")
    absent = {"mean": "mean training embedding", "input": "empty text / grey image"}.get(rx.baseline)
    if absent:
        fig.text(0.78, 0.115, f"absent modality = {absent}", fontsize=7.5, color="0.35")
    if rx.absent:
        fig.text(0.78, 0.09, f"this post has no {' and no '.join(rx.absent)}: its φ is 0", fontsize=7.5,
                 color="0.35")


def draw_card(rx: Any, image: Any, vision: Any, path: str | Path) -> Path:
    """Write the card PNG to `path` (a folder: `<record id>.png` in it) and return the file."""
    from jftzoo.atomic import atomic_write

    target = Path(path)
    if target.suffix.lower() != ".png":
        target = target / f"{_safe(rx.id)}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    card_figure(rx, image, vision).savefig(buf, format="png", dpi=DPI)
    atomic_write(target, buf.getvalue())
    return target


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "record"


def draw_shares(result: Any, path: str | Path) -> Path:
    """A bar chart of the text and image shares, overall and per predicted class (with record counts)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from jftzoo.atomic import atomic_write

    rows = [("all", result.n, result.modality_shares["text"])]
    rows += [(c, e["n"], e["text"]) for c, e in result.per_class.items() if e["n"]]
    fig = Figure(figsize=(7.0, 1.1 + 0.45 * len(rows)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.22, 0.22, 0.6, 0.6))
    ys = range(len(rows))
    text = [r[2] for r in rows]
    ax.barh(ys, text, color="#3b6fb6", label="text")
    ax.barh(ys, [1 - t for t in text], left=text, color="#e08a2c", label="image")
    ax.set_yticks(list(ys), [f"{c} (n={n})" for c, n, _ in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color="white", lw=0.8, ls=":")
    for y, t in zip(ys, text, strict=True):
        ax.text(0.01, y, f"{t:.0%}", va="center", color="white", fontsize=8, weight="bold")
        ax.text(0.99, y, f"{1 - t:.0%}", va="center", ha="right", color="white", fontsize=8, weight="bold")
    ax.set_xlabel("share of |Shapley value| (predicted class's probability)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"modality shares by predicted class, baseline {result.baseline!r}", fontsize=10, loc="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, buf.getvalue())
    return target
