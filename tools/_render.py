"""Pictures the inference tools write: timeline plots, labelled video copies, heat-map overlays,
PNG grids and GIFs. Presentation only (matplotlib, PIL, PyAV); the numbers come from the engine.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from common.fileio import atomic_path

__all__ = ["pyplot", "timeline_png", "write_labelled_video", "denormalize", "heat_overlay",
           "grid_png", "gif", "unique_stem"]


def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt
    return plt


def unique_stem(path: str, used: set) -> str:
    """The file name of ``path`` without extension, made unique among ``used`` (then added)."""
    stem = os.path.splitext(os.path.basename(path))[0] or "video"
    name, n = stem, 2
    while name in used:
        name, n = f"{stem}_{n}", n + 1
    used.add(name)
    return name


def _save_figure(fig, path: str) -> None:
    plt = pyplot()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Timelines of windowed predictions
# ---------------------------------------------------------------------------------------------
def timeline_png(path: str, spans_s: Sequence[tuple[float, float]], probs: np.ndarray,
                 names: Sequence[str], title: str = "", top: int = 5) -> str:
    """Time on x; the ``top`` classes with the highest probability anywhere are coloured bands
    stacked by probability at each window's centre (grey: the other classes), and a strip above
    shows the top-1 class of each window."""
    plt = pyplot()
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs.max(axis=0), kind="stable")[:min(top, probs.shape[1])]
    centres = np.array([(s + e) / 2 for s, e in spans_s])
    # each window's value at its centre; the first and last reach out to the video's ends
    x = np.concatenate([[spans_s[0][0]], centres, [spans_s[-1][1]]])
    bands = probs[:, order].T
    bands = np.concatenate([bands[:, :1], bands, bands[:, -1:]], axis=1)
    other = np.clip(1.0 - bands.sum(axis=0), 0.0, 1.0)
    colours = plt.get_cmap("tab10")(np.arange(len(order)) % 10)
    fig, (strip, ax) = plt.subplots(2, 1, figsize=(9, 3.8), sharex=True,
                                    gridspec_kw={"height_ratios": [1, 6], "hspace": 0.08})
    ax.stackplot(x, *bands, other, colors=list(colours) + [(0.85, 0.85, 0.85, 1.0)],
                 labels=[names[i] for i in order] + ["other classes"], alpha=0.9)
    ax.set_xlim(min(s for s, _ in spans_s), max(e for _, e in spans_s))
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    # top-1 strip: each window's top class from halfway to its neighbours' centres
    edges = np.concatenate([[ax.get_xlim()[0]], (centres[1:] + centres[:-1]) / 2,
                            [ax.get_xlim()[1]]])
    colour_of = {int(c): colours[i] for i, c in enumerate(order)}
    for i, cls in enumerate(probs.argmax(axis=1)):
        strip.axvspan(edges[i], edges[i + 1], color=colour_of.get(int(cls), (0.5, 0.5, 0.5, 1)))
    strip.set_yticks([])
    strip.set_ylabel("top-1", rotation=0, ha="right", va="center", fontsize=8)
    if title:
        strip.set_title(title, fontsize=9)
    _save_figure(fig, path)
    return path


# ---------------------------------------------------------------------------------------------
# A copy of a video with a caption on every frame
# ---------------------------------------------------------------------------------------------
def _font(height: int):
    from PIL import ImageFont
    size = max(10, height // 16)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def write_labelled_video(src: str, dst: str, caption: Callable[[int, float], str],
                         min_side: int = 256) -> int:
    """Write ``dst`` (H.264 mp4): every frame of ``src`` with ``caption(frame_index, seconds)``
    drawn in its top-left corner; a video whose short side is under ``min_side`` pixels is
    enlarged so that the caption fits. Written atomically; returns the number of frames."""
    import av
    from PIL import Image, ImageDraw
    count = 0
    with av.open(src) as reader:
        stream = reader.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        width, height = stream.codec_context.width, stream.codec_context.height
        scale = max(1, -(-min_side // max(1, min(width, height))))
        width, height = width * scale, height * scale
        even_w, even_h = width + width % 2, height + height % 2  # yuv420p wants even sizes
        font = _font(height)
        with atomic_path(dst) as tmp:
            with av.open(tmp, mode="w", format="mp4") as writer:
                out = writer.add_stream("libx264", rate=Fraction(rate).limit_denominator(100000))
                out.width, out.height, out.pix_fmt = even_w, even_h, "yuv420p"
                out.options = {"crf": "20", "preset": "veryfast"}
                for frame in reader.decode(stream):
                    rgb = frame.to_ndarray(format="rgb24")
                    if scale > 1:
                        rgb = np.asarray(Image.fromarray(rgb).resize((width, height),
                                                                     Image.BILINEAR))
                    if (even_h, even_w) != rgb.shape[:2]:
                        rgb = np.pad(rgb, ((0, even_h - height), (0, even_w - width), (0, 0)),
                                     mode="edge")
                    image = Image.fromarray(rgb)
                    draw = ImageDraw.Draw(image)
                    seconds = float(frame.time) if frame.time is not None else count / float(rate)
                    text = caption(count, seconds)
                    box = draw.textbbox((4, 4), text, font=font)
                    draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3),
                                   fill=(0, 0, 0))
                    draw.text((4, 4), text, fill=(255, 255, 255), font=font)
                    for packet in out.encode(av.VideoFrame.from_ndarray(np.asarray(image),
                                                                        format="rgb24")):
                        writer.mux(packet)
                    count += 1
                for packet in out.encode():
                    writer.mux(packet)
    return count


# ---------------------------------------------------------------------------------------------
# Heat maps over frames
# ---------------------------------------------------------------------------------------------
def denormalize(clip: torch.Tensor, mean, std) -> np.ndarray:
    """Normalised (T, 3, S, S) -> uint8 (T, S, S, 3)."""
    mean = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    rgb = (clip.float().cpu() * std + mean).clamp(0, 1)
    return (rgb * 255).round().byte().permute(0, 2, 3, 1).numpy()


def heat_overlay(frames: np.ndarray, maps: torch.Tensor, alpha: float = 0.5,
                 cmap: str = "jet") -> tuple[np.ndarray, np.ndarray]:
    """uint8 frames (T, S, S, 3) and maps (T', h, w) -> (overlays, heat maps), both uint8
    (T, S, S, 3). The maps are scaled to [0, 1] over the whole clip (so strength can be compared
    across frames), upsampled bilinearly; map t' covers frames t with t * T' // T = t'."""
    plt = pyplot()
    t, size = frames.shape[0], frames.shape[1:3]
    m = maps.detach().float().cpu()
    low, high = float(m.min()), float(m.max())
    m = (m - low) / (high - low) if high > low else torch.zeros_like(m)
    m = F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
    m = m[[i * m.shape[0] // t for i in range(t)]].clamp(0, 1).numpy()
    heat = (plt.get_cmap(cmap)(m)[..., :3] * 255).round().astype(np.uint8)
    mixed = ((1 - alpha) * frames.astype(np.float32) + alpha * heat.astype(np.float32))
    return mixed.round().clip(0, 255).astype(np.uint8), heat


def grid_png(path: str, columns: dict[str, np.ndarray], title: str = "",
             row_label: Callable[[int], str] = lambda i: f"frame {i}") -> str:
    """A PNG grid: one row per frame, one column per named stack of frames (T, S, S, 3)."""
    plt = pyplot()
    names = list(columns)
    rows = len(next(iter(columns.values())))
    fig, axes = plt.subplots(rows, len(names), figsize=(1.9 * len(names), 1.9 * rows),
                             squeeze=False)
    for r in range(rows):
        for c, name in enumerate(names):
            ax = axes[r][c]
            ax.imshow(columns[name][r])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(row_label(r), fontsize=8)
    height = fig.get_size_inches()[1]
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height if title else 1))
    _save_figure(fig, path)
    return path


def gif(path: str, columns: dict[str, np.ndarray], fps: float = 4.0, min_side: int = 160) -> str:
    """An animated GIF whose frame t shows frame t of every column side by side (small frames
    are enlarged to ``min_side`` pixels), looping forever."""
    from PIL import Image
    stacks = list(columns.values())
    side = stacks[0].shape[1]
    scale = max(1, int(np.ceil(min_side / side)))
    frames = []
    for t in range(len(stacks[0])):
        row = np.concatenate([s[t] for s in stacks], axis=1)
        image = Image.fromarray(row)
        if scale > 1:
            image = image.resize((row.shape[1] * scale, row.shape[0] * scale), Image.NEAREST)
        frames.append(image.convert("P", palette=Image.ADAPTIVE))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                           duration=int(1000 / fps), loop=0)
    return path
