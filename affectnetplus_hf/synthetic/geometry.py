"""Face geometry of the synthetic sample: the canonical face deformed by action units, and its projection.

Canonical coordinates: x to the image's right, y down, half face width = 1, with a depth per point so
that the head pose can turn the face (:class:`Projector`). Landmarks follow the iBUG 68-point order
(jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67). Side 0 is the face's right (image left),
side 1 its left (image right).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from affectnetplus_hf.synthetic.expressions import AU_COLUMN
from affectnetplus_hf.synthetic.parameters import FaceParams


def au_intensity(aus: np.ndarray, au: int, side: int | None = None) -> float:
    """Intensity of ``au`` on one side (0 = face right = image left, 1 = left), or the mean of both."""
    column = AU_COLUMN[au]
    if side is None:
        return float(0.5 * (aus[0, column] + aus[1, column]))
    return float(aus[side, column])


@functools.lru_cache(maxsize=64)
def grid(lo: float, hi: float, n: int) -> np.ndarray:
    """``numpy.linspace(lo, hi, n)``, cached and read-only."""
    values = np.linspace(lo, hi, n)
    values.flags.writeable = False
    return values


@functools.lru_cache(maxsize=64)
def _unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=-1)
    circle.flags.writeable = False
    return circle


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 18) -> np.ndarray:
    """``n`` points of the ellipse centred on ``(cx, cy)`` with radii ``(rx, ry)``."""
    return _unit_circle(n) * (rx, ry) + (cx, cy)


class FaceGeometry:
    """The canonical face of :class:`~affectnetplus_hf.synthetic.parameters.FaceParams`: outline, features,
    landmarks and depth, deformed by the face's (2, 21) AU intensities."""

    def __init__(self, params: FaceParams):
        self.params = params
        self.identity = params.identity
        self.aus = params.aus
        self._outline_cache: dict[tuple[str, int], np.ndarray] = {}

    def au(self, au: int, side: int | None = None) -> float:
        """Intensity of ``au`` on ``side`` (both sides' mean when ``None``)."""
        return au_intensity(self.aus, au, side)

    # -- depth ---------------------------------------------------------------------------------
    def depth(self, xy: np.ndarray) -> np.ndarray:
        identity = self.identity
        x, y = xy[..., 0] / identity["face_w"], (xy[..., 1] - 0.1) / 1.45
        base = 0.75 * np.sqrt(np.clip(1.0 - 0.85 * x**2 - 0.6 * y**2, 0.0, None))
        ramp = np.clip((xy[..., 1] - identity["eye_y"]) / (identity["nose_tip"] - identity["eye_y"]), 0, 1)
        after = np.exp(-np.clip(xy[..., 1] - identity["nose_tip"], 0, None) / 0.06)
        nose = 0.35 * np.exp(-((xy[..., 0] / 0.13) ** 2)) * ramp * after
        return base + nose

    # -- outline -------------------------------------------------------------------------------
    def jaw_drop(self) -> float:
        return 0.13 * self.au(26) + 0.17 * self.au(27) + 0.015 * self.au(25)

    def _cached(self, name: str, n: int, build) -> np.ndarray:
        key = (name, n)
        if key not in self._outline_cache:
            self._outline_cache[key] = build(n)
        return self._outline_cache[key]

    def jaw(self, n: int = 17) -> np.ndarray:
        """Jaw line from the image-left temple round the chin (``n`` points)."""
        return self._cached("jaw", n, self._jaw)

    def _jaw(self, n: int) -> np.ndarray:
        identity = self.identity
        t = grid(0.0, math.pi, n)
        top, chin = identity["jaw_top"], identity["chin_y"] + 0.8 * self.jaw_drop() - 0.05 * self.au(17)
        s = np.sin(t)
        x = -identity["face_w"] * np.cos(t) * (1.0 - identity["chin_narrow"] * s**3)
        y = top + (chin - top) * s**0.9
        return np.stack([x, y], axis=-1)

    def forehead(self, n: int = 15) -> np.ndarray:
        """Top of the head from the image-right temple to the image-left one (``n`` points)."""
        return self._cached("forehead", n, self._forehead)

    def _forehead(self, n: int) -> np.ndarray:
        identity = self.identity
        t = grid(0.0, math.pi, n)
        x = identity["face_w"] * np.cos(t)
        y = identity["jaw_top"] - (identity["head_top"] + identity["jaw_top"]) * np.sin(t) ** 0.8
        return np.stack([x, y], axis=-1)

    # -- features ------------------------------------------------------------------------------
    def brow(self, side: int, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Brow centre line from outer (u=0) to inner (u=1) end, and its thickness per point."""
        identity = self.identity
        sign = -1.0 if side == 0 else 1.0
        u = grid(0.0, 1.0, n)
        outer = identity["eye_sep"] + identity["eye_w"] * 1.3
        inner = identity["brow_inner"]
        x = outer + (inner - outer) * u
        y = (
            identity["eye_y"]
            - identity["brow_gap"]
            - identity["brow_arch"] * np.sin(math.pi * (0.85 * u + 0.1))
            + 0.03 * (1 - u) ** 2
        )
        au1, au2, au4, au9 = self.au(1, side), self.au(2, side), self.au(4, side), self.au(9, side)
        y = y - 0.2 * au1 * u**1.5 - 0.2 * au2 * (1 - u) ** 1.2 + 0.1 * au4 + 0.08 * au4 * u + 0.07 * au9 * u
        x = x - (0.07 * au4 + 0.03 * au9) * u**1.5
        thick = identity["brow_thick"] * (1.0 - 0.45 * (1 - u) ** 2)
        return np.stack([sign * x, y], axis=-1), thick

    def eye(self, side: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower lid curves at ``u`` in [-1 (image-left corner), 1]."""
        identity = self.identity
        sign = -1.0 if side == 0 else 1.0
        cx, cy = sign * identity["eye_sep"], identity["eye_y"]
        x = cx + identity["eye_w"] * u
        outer = u * sign  # +1 at the outer corner
        corner_y = cy - identity["eye_tilt"] * outer
        au5, au6, au7, au9 = self.au(5, side), self.au(6, side), self.au(7, side), self.au(9, side)
        h_up = identity["eye_h"] + 0.07 * au5 - 0.035 * au7 - 0.01 * au6
        h_lo = 0.85 * identity["eye_h"] - 0.035 * au6 - 0.04 * au7 - 0.02 * au9 + 0.01 * au5
        h_up, h_lo = max(h_up, 0.012), max(h_lo, 0.005)
        bump = (1.0 - u**2) ** 0.75
        upper = np.stack([x, corner_y - h_up * bump], axis=-1)
        lower = np.stack([x, corner_y + h_lo * bump], axis=-1)
        return upper, lower

    def nose(self) -> np.ndarray:
        """Landmarks 27-35."""
        identity = self.identity
        au9, au10 = self.au(9), self.au(10)
        top, tip = identity["eye_y"] + 0.02, identity["nose_tip"] - 0.015 * au9
        bridge = np.stack([np.zeros(4), np.linspace(top, tip, 4)], axis=-1)
        w = identity["nose_w"] + 0.035 * au9
        base_y = tip + 0.08 - 0.045 * au9 - 0.02 * au10
        xs = np.array([-w, -w / 2, 0.0, w / 2, w])
        ys = base_y + np.array([-0.03, 0.005, 0.02, 0.005, -0.03])
        return np.concatenate([bridge, np.stack([xs, ys], axis=-1)])

    def mouth_curves(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """Upper/lower outer and inner lip curves at ``u`` in [-1 (image-left corner), 1]."""
        identity = self.identity
        my, mw = identity["mouth_y"], identity["mouth_w"]
        corner_dx, corner_dy = [], []
        for side in (0, 1):
            au12, au14, au15, au20 = (self.au(k, side) for k in (12, 14, 15, 20))
            au22, au23, au24, au27 = (self.au(k, side) for k in (22, 23, 24, 27))
            out = 0.1 * au12 + 0.13 * au20 - 0.02 * au14 - 0.07 * au22 - 0.02 * au23 - 0.03 * au24 - 0.09 * au27
            up = -0.17 * au12 - 0.03 * au14 + 0.16 * au15 + 0.02 * au20
            corner_dx.append(out)
            corner_dy.append(up)
        right = u < 0
        weight = np.abs(u) ** 1.6
        dx = np.where(right, -corner_dx[0], corner_dx[1]) * weight
        dy = np.where(right, corner_dy[0], corner_dy[1]) * weight
        au10, au16, au17, au20 = self.au(10), self.au(16), self.au(17), self.au(20)
        au23, au24, au25, au12 = self.au(23), self.au(24), self.au(25), self.au(12)
        x = u * mw + dx
        mid = my + dy - 0.04 * au17 * (1 - u**2)
        gap = 0.045 * au25 + 0.17 * self.au(26) + 0.22 * self.au(27) + 0.03 * au20 * au25
        gap *= max(0.0, 1.0 - 1.2 * au24) * max(0.0, 1.0 - 0.5 * au23)
        q = 2.0 + 4.0 * au20 + 3.0 * au12
        profile = np.clip(1.0 - np.abs(u) ** q, 0.0, None) ** 0.5
        raise10 = 0.06 * au10 * np.clip(1.0 - np.abs(u) ** 2.5, 0, None)
        drop16 = 0.05 * au16 * np.clip(1.0 - np.abs(u) ** 2.5, 0, None)
        thin = max(0.25, 1.0 - 0.45 * au23 - 0.45 * au24)
        # AU14 (dimpler) tightens and thins the lips on its own side (one-sided in contempt).
        au14_side = np.where(right, self.au(14, 0), self.au(14, 1)) * np.abs(u) ** 0.7
        thin = thin * np.clip(1.0 - 0.35 * au14_side, 0.4, 1.0)
        upper_in = mid - 0.4 * gap * profile - raise10
        lower_in = mid + 0.6 * gap * profile + drop16
        shape = np.clip(1.0 - u**2, 0.0, None) ** 0.5
        cupid = 1.0 - 0.25 * np.exp(-((u / 0.12) ** 2))
        upper_out = upper_in - identity["lip_up"] * thin * shape * cupid - 0.006
        lower_out = lower_in + identity["lip_lo"] * thin * shape + 0.006
        return {
            "x": x,
            "upper_in": upper_in,
            "lower_in": lower_in,
            "upper_out": upper_out,
            "lower_out": lower_out,
        }

    def landmarks(self) -> np.ndarray:
        """The 68 iBUG landmarks in canonical coordinates (before pose)."""
        pts = np.zeros((68, 2))
        pts[0:17] = self.jaw(17)
        brow_right, _ = self.brow(0)
        brow_left, _ = self.brow(1)
        pts[17:22] = brow_right  # outer -> inner (image left)
        pts[22:27] = brow_left[::-1]  # inner -> outer
        pts[27:36] = self.nose()
        eye_u = np.array([-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0])
        upper, lower = self.eye(0, eye_u)
        pts[36:42] = [upper[0], upper[1], upper[2], upper[3], lower[2], lower[1]]
        upper, lower = self.eye(1, eye_u)
        pts[42:48] = [upper[0], upper[1], upper[2], upper[3], lower[2], lower[1]]
        outer = self.mouth_curves(np.array([-1.0, -0.6, -0.25, 0.0, 0.25, 0.6, 1.0]))
        pts[48:55] = np.stack([outer["x"], outer["upper_out"]], axis=-1)
        corner_y = 0.5 * (outer["upper_in"] + outer["lower_in"])
        pts[48, 1], pts[54, 1] = corner_y[0], corner_y[-1]
        lower_lip = np.stack([outer["x"], outer["lower_out"]], axis=-1)
        pts[55:60] = lower_lip[[5, 4, 3, 2, 1]]
        inner = self.mouth_curves(np.array([-0.9, -0.4, 0.0, 0.4, 0.9]))
        inner_up = np.stack([inner["x"], inner["upper_in"]], axis=-1)
        inner_lo = np.stack([inner["x"], inner["lower_in"]], axis=-1)
        corner = 0.5 * (inner_up + inner_lo)
        pts[60] = corner[0]
        pts[61:64] = inner_up[1:4]
        pts[64] = corner[4]
        pts[65:68] = inner_lo[[3, 2, 1]]
        return pts


class Projector:
    """Rotate canonical points (with depth) by the head pose and map them to pixels."""

    def __init__(self, face: FaceGeometry, scale: float | np.ndarray, offset: tuple[float, float]):
        params = face.params
        self.face = face
        yaw, pitch, roll = (math.radians(v) for v in (params.yaw, params.pitch, params.roll))
        ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
        rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
        rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
        self.rotation = rz @ rx @ ry
        self.scale = scale
        self.offset = np.asarray(offset, dtype=np.float64)

    def canonical_to_plane(self, xy: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """Rotated points on the image plane (canonical units); ``z`` defaults to the face's depth."""
        xy = np.asarray(xy, dtype=np.float64)
        if z is None:
            z = self.face.depth(xy)
        p3 = np.concatenate([xy, z[..., None]], axis=-1)
        return (p3 @ self.rotation.T)[..., :2]

    def __call__(self, xy: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        return self.canonical_to_plane(xy, z) * self.scale + self.offset


__all__ = ["FaceGeometry", "Projector", "au_intensity", "ellipse", "grid"]
