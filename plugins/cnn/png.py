"""Pictures without a plotting library: colour maps, panels and a PNG writer (zlib + struct).

The explain images are grids of upscaled pixels, so a few lines of numpy and the PNG format's
three chunks (IHDR, IDAT, IEND) suffice; no matplotlib or Pillow is needed.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

GAP = 4                # pixels of white between panels and tiles
PANEL = 224            # target side of one image panel, in pixels
FILTER_TILE = 40       # target side of one first-layer filter tile, in pixels


def panel_scale(height: int, width: int) -> int:
    """Integer upscaling factor that brings an image to about PANEL pixels (nearest neighbour)."""
    return max(1, PANEL // max(height, width))


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an ``[H, W, 3]`` uint8 array as an 8-bit RGB PNG."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_png needs [H, W, 3] uint8, got {rgb.shape}")
    h, w, _ = rgb.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    # Each scanline starts with its filter type (0 = none).
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, colour type 2 (RGB)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def read_png_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk."""
    data = Path(path).read_bytes()[:24]
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    return struct.unpack(">II", data[16:24])


# -- colour maps: values in [0, 1] → uint8 RGB -------------------------------------------------


def _interp(values: np.ndarray, stops: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    v = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
    xs = [s for s, _ in stops]
    channels = [np.interp(v, xs, [c[i] for _, c in stops]) for i in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def gray(values: np.ndarray) -> np.ndarray:
    """0 → black, 1 → white."""
    return _interp(values, [(0.0, (0, 0, 0)), (1.0, (255, 255, 255))])


def heat(values: np.ndarray) -> np.ndarray:
    """0 → black, then red, yellow, 1 → white (a "hot" map for magnitudes)."""
    return _interp(values, [(0.0, (0, 0, 0)), (0.4, (200, 0, 0)), (0.75, (255, 200, 0)), (1.0, (255, 255, 255))])


def diverging(values: np.ndarray) -> np.ndarray:
    """0 → blue, 0.5 → white, 1 → red (for signed values mapped with :func:`symmetric`)."""
    return _interp(values, [(0.0, (33, 102, 172)), (0.5, (247, 247, 247)), (1.0, (178, 24, 43))])


def normalise(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (constant input → zeros)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def symmetric(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Signed values to [0, 1] with 0 at 0.5, ±limit (default max |v|) at the ends."""
    limit = float(np.max(np.abs(values))) if limit is None else limit
    return 0.5 + 0.5 * values / limit if limit > 0 else np.full_like(values, 0.5)


# -- layout -------------------------------------------------------------------------------------


def upscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    return rgb.repeat(factor, axis=0).repeat(factor, axis=1)


def hstack(panels: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Panels of equal height side by side, separated by white columns."""
    h = panels[0].shape[0]
    spacer = np.full((h, gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, panel in enumerate(panels):
        if panel.shape[0] != h:
            raise ValueError("panels must have the same height")
        parts += ([spacer] if i else []) + [panel]
    return np.concatenate(parts, axis=1)


def tile_grid(tiles: list[np.ndarray], cols: int, gap: int = GAP) -> np.ndarray:
    """Equal-sized tiles in rows of ``cols``, white gaps, white fill for a short last row."""
    th, tw, _ = tiles[0].shape
    rows = (len(tiles) + cols - 1) // cols
    out = np.full((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw] = tile
    return out
