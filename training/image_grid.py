"""Mid-slice grids of corrupted / restored / target cubes, for TensorBoard and PNG files."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.handlers import from_engine
from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
SummaryWriter, _ = optional_import("torch.utils.tensorboard", name="SummaryWriter")

__all__ = ["COLUMN_TITLES", "restoration_grid", "save_grid_png", "RestorationImageHandler"]


def _stack(images: torch.Tensor | Sequence[torch.Tensor]) -> np.ndarray:
    """(B, C, H, W, D) tensor or a list of (C, H, W, D) tensors -> float32 numpy (B, C, H, W, D)."""
    if isinstance(images, (list, tuple)):
        images = torch.stack([torch.as_tensor(i) for i in images])
    return torch.as_tensor(images).detach().float().cpu().numpy()


def restoration_grid(
    corrupted: torch.Tensor | Sequence[torch.Tensor],
    restored: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor | Sequence[torch.Tensor],
    max_items: int = 4,
    border: int = 1,
) -> np.ndarray:
    """
    One grey image in [0, 1]: a row per cube (at most ``max_items``), columns corrupted | restored |
    target, each the middle axial slice (last spatial axis) of the first channel.

    Args:
        corrupted: network inputs, (B, C, H, W, D) or a list of (C, H, W, D).
        restored: network outputs, same shape.
        target: clean cubes, same shape.
        max_items: most rows. Defaults to 4.
        border: pixels of white between tiles. Defaults to 1.

    Returns:
        float32 array (rows * (H + border) - border, 3 * (W + border) - border).
    """
    columns = [_stack(x)[:max_items] for x in (corrupted, restored, target)]
    if len({c.shape for c in columns}) != 1 or columns[0].ndim != 5:
        raise ValueError(f"expected three (B, C, H, W, D) batches of the same shape, got {[c.shape for c in columns]}.")
    n, _, h, w, d = columns[0].shape
    grid = np.ones((n * (h + border) - border, 3 * (w + border) - border), dtype=np.float32)
    for row in range(n):
        for col, cubes in enumerate(columns):
            tile = np.clip(cubes[row, 0, :, :, d // 2], 0.0, 1.0)
            top, left = row * (h + border), col * (w + border)
            grid[top : top + h, left : left + w] = tile
    return grid


COLUMN_TITLES = ("corrupted", "restored", "target")


def save_grid_png(
    grid: np.ndarray, path: str | os.PathLike, zoom: int = 4, column_titles: Sequence[str] = COLUMN_TITLES,
    title: str | None = None,
) -> str:
    """
    Write a grey grid in [0, 1] as a PNG, each pixel ``zoom`` x ``zoom``, under a header naming the
    columns (and an optional ``title``); return the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    dpi, header = 100, 0.22 * (1 + (title is not None))  # header height in inches
    height, width = grid.shape[0] * zoom / dpi, grid.shape[1] * zoom / dpi
    fig = Figure(figsize=(width, height + header), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, height / (height + header)))
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title is not None:
        fig.text(0.5, 1 - 0.11 / (height + header), title, ha="center", va="center", fontsize=9)
    label_y = (height + 0.11) / (height + header)  # just above the image
    for i, name in enumerate(column_titles):
        fig.text((i + 0.5) / len(column_titles), label_y, name, ha="center", va="center", fontsize=9)
    fig.savefig(path, dpi=dpi)
    return path


class RestorationImageHandler:
    """
    Ignite handler that, for the first batch of every run of the attached engine (an evaluator:
    one run per validation), writes a :py:func:`restoration_grid` to TensorBoard as
    ``tag`` at the trainer's epoch, and optionally as ``<png_dir>/<tag>_epoch<N>.png``.

    Args:
        log_dir: TensorBoard folder; None writes no TensorBoard image.
        png_dir: folder for PNG copies; None writes none.
        tag: image name. Defaults to "corrupted_restored_target".
        max_items: rows of the grid. Defaults to 4.
        output_transform: engine output -> (corrupted, restored, target); default reads the
            ``image``, ``pred`` and ``label`` entries of MONAI engine outputs.
        summary_writer: an existing ``SummaryWriter`` to use instead of ``log_dir``.
        title: header of each PNG; default "epoch <N>, middle axial slices" (a standalone evaluation
            has no training epoch to show, so evaluate.json names what it evaluates instead).
    """

    def __init__(
        self,
        log_dir: str | os.PathLike | None = None,
        png_dir: str | os.PathLike | None = None,
        tag: str = "corrupted_restored_target",
        max_items: int = 4,
        output_transform: Callable = from_engine(["image", "pred", "label"]),
        summary_writer=None,
        title: str | None = None,
    ) -> None:
        self.title = title
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.png_dir = None if png_dir is None else os.fspath(png_dir)
        self.tag = tag
        self.max_items = max_items
        self.output_transform = output_transform
        self._writer = summary_writer
        self.last_png: str | None = None

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine) -> None:
        if self.log_dir is None and self._writer is None and self.png_dir is None:
            return  # nowhere to write
        epoch_length = engine.state.epoch_length or 0
        if epoch_length and (engine.state.iteration - 1) % epoch_length != 0:
            return  # only the first batch of each run
        grid = restoration_grid(*self.output_transform(engine.state.output), max_items=self.max_items)
        epoch = int(engine.state.epoch)
        if self.log_dir is not None or self._writer is not None:
            if self._writer is None:
                self._writer = SummaryWriter(log_dir=self.log_dir)
            self._writer.add_image(self.tag, grid[None], global_step=epoch, dataformats="CHW")
            self._writer.flush()
        if self.png_dir is not None:
            png = os.path.join(self.png_dir, f"{self.tag}_epoch{epoch:04d}.png")
            self.last_png = save_grid_png(grid, png, title=self.title or f"epoch {epoch}, middle axial slices")
