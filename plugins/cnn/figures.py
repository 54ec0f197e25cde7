"""Labelled figures for ``zoo explain``, drawn with matplotlib (the ``plots`` extra).

A figure is a row (or grid) of image panels, each with a title and, where its colours stand for
numbers, a colour bar naming what they measure; the figure's title says which model saw which
sample and what it predicted, so a PNG is understood without the command that wrote it.
Figures are built on :class:`matplotlib.figure.Figure` (no pyplot state), so they are safe to
draw from any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.core.contract.errors import ZooError

#: Inches per panel side; at :data:`DPI` a panel is about 250 px.
PANEL_INCHES = 2.6
DPI = 100


@dataclass
class Panel:
    """One image of a figure.

    Args:
        image: ``[H, W]`` values shown through ``cmap``, or ``[H, W, 3]`` RGB in [0, 1].
        title: what the panel shows.
        cmap: a matplotlib colour map name for ``[H, W]`` images.
        vmin, vmax: the values at the ends of the colour map (``None``: the image's range).
        colorbar: the colour bar's label; ``None`` draws no colour bar (a plain picture).
        overlay: ``[H, W]`` values in [0, 1] drawn over ``image`` with ``overlay_cmap`` at half opacity.
    """

    image: np.ndarray
    title: str
    cmap: str = "gray"
    vmin: float | None = None
    vmax: float | None = None
    colorbar: str | None = None
    overlay: np.ndarray | None = None
    overlay_cmap: str = "hot"


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ZooError("zoo explain draws its pictures with matplotlib: pip install 'zoo-ml[plots]'") from None
    return Figure


def panel_figure(panels: list[Panel], title: str, cols: int | None = None, shared_colorbar: str | None = None,
                 panel_inches: float = PANEL_INCHES) -> Any:
    """A :class:`matplotlib.figure.Figure` of ``panels`` in rows of ``cols`` (default: one row).

    ``shared_colorbar`` labels one colour bar for all panels (those on one colour scale).
    """
    cols = cols or len(panels)
    rows = -(-len(panels) // cols)
    fig = _figure_class()(figsize=(panel_inches * cols * 1.25, panel_inches * rows + 0.6), dpi=DPI,
                          layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax, panel in zip(axes, panels):
        shown = ax.imshow(panel.image, cmap=None if panel.image.ndim == 3 else panel.cmap, vmin=panel.vmin,
                          vmax=panel.vmax, interpolation="nearest")
        if panel.overlay is not None:
            shown = ax.imshow(panel.overlay, cmap=panel.overlay_cmap, vmin=0.0, vmax=1.0, alpha=0.5,
                              interpolation="nearest")
        ax.set_title(panel.title, fontsize=9 if panel_inches >= 2 else 7)
        ax.set_xticks([])
        ax.set_yticks([])
        if panel.colorbar is not None:
            fig.colorbar(shown, ax=ax, shrink=0.8).set_label(panel.colorbar, fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    if shared_colorbar is not None:
        fig.colorbar(shown, ax=list(axes), shrink=0.7).set_label(shared_colorbar, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (the title also goes into the PNG's ``Title`` text field)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    fig.savefig(path, format="png", metadata={"Title": title})
    return path
