"""Cutting a map into rectangular tiles: the unit of work that runners schedule and stores write."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SpecError

#: Points per tile aimed at by the default tile shape: enough work to keep threads busy.
TILE_POINTS = 4096


@dataclass(frozen=True)
class Tile:
    """Tile number ``index`` (row-major over the map's tiles): rows ``y0:y1`` and columns ``x0:x1``."""

    index: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)

    @property
    def size(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)

    @property
    def region(self) -> tuple[slice, slice]:
        return (slice(self.y0, self.y1), slice(self.x0, self.x1))

    def grid_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(iy, ix) of every point of the tile, row-major."""
        iy, ix = np.mgrid[self.y0 : self.y1, self.x0 : self.x1]
        return iy.ravel(), ix.ravel()


def default_tile_shape(shape: tuple[int, int], points: int = TILE_POINTS) -> tuple[int, int]:
    """About ``points`` points (an engine's ``tile_points``, TILE_POINTS for the CPU engines): up to 256 columns wide
    (the whole row where the map is no wider than 4096), as many rows as fill the rest."""
    ny, nx = shape
    width = min(nx, max(256, min(4096, points // 256)))
    return (max(1, min(ny, points // width)), width)


def clamp_tile_shape(shape: tuple[int, int], tile_shape: tuple[int, int] | None) -> tuple[int, int]:
    """The tile shape a map of ``shape`` uses: the default, or the one asked for, cut to the map."""
    th, tw = tile_shape or default_tile_shape(shape)
    if th < 1 or tw < 1:
        raise SpecError(f"tile shape must be at least 1x1, got {th}x{tw}")
    return min(th, shape[0]), min(tw, shape[1])


def tiles(shape: tuple[int, int], tile_shape: tuple[int, int] | None = None) -> list[Tile]:
    """The tiles covering a map of ``shape`` (ny, nx), row by row; edge tiles may be smaller."""
    ny, nx = shape
    th, tw = clamp_tile_shape(shape, tile_shape)
    out = []
    for y0 in range(0, ny, th):
        for x0 in range(0, nx, tw):
            out.append(Tile(len(out), y0, min(y0 + th, ny), x0, min(x0 + tw, nx)))
    return out
