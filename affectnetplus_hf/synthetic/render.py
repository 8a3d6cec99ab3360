"""The synthetic sample's face renderer: PIL polygons and lines on a supersampled canvas.

:func:`render_face` draws one face of :class:`~affectnetplus_hf.synthetic.parameters.FaceParams` in named
steps, back to front — background, body, head and hair, eyes (with AU6/AU7 lids, crow's feet, cheeks),
forehead lines (AU1/2/4), brows, nose (AU9/10), mouth (AU10-27, nasolabial folds, dimples) and chin
(AU17) — then downsamples and applies lighting, blur and noise. The face is collected in canonical
coordinates (:class:`DrawList`) and projected with the head pose in one go; the renderer also returns
the 68 landmarks and the face box it drew.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from affectnetplus_hf.synthetic.config import DEFAULT_IMAGE_SIZE
from affectnetplus_hf.synthetic.geometry import FaceGeometry, Projector, ellipse, grid
from affectnetplus_hf.synthetic.parameters import Color, FaceParams

Framing = Literal["scene", "face"]


def _shade(color: Color, factor: float) -> Color:
    return tuple(int(max(0, min(255, round(c * factor)))) for c in color)


def _mix(a: Color, b: Color, t: float) -> Color:
    t = max(0.0, min(1.0, t))
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


class DrawList:
    """Deferred drawing: collect canonical primitives, project them all at once, draw in order.

    A primitive's points get the face's depth unless ``depth`` gives theirs (e.g. the flat body).
    """

    def __init__(self, face: FaceGeometry):
        self.face = face
        self.ops: list[tuple[str, int, int, dict[str, Any]]] = []
        self.points: list[np.ndarray] = []
        self.depths: list[np.ndarray | None] = []
        self.count = 0

    def _add(self, kind: str, points: np.ndarray, depth: np.ndarray | None, style: dict[str, Any]) -> None:
        points = np.asarray(points, dtype=np.float64)
        self.ops.append((kind, self.count, self.count + len(points), style))
        self.points.append(points)
        self.depths.append(None if depth is None else np.asarray(depth, dtype=np.float64))
        self.count += len(points)

    def polygon(self, points: np.ndarray, fill: Color, depth: np.ndarray | None = None) -> None:
        self._add("polygon", points, depth, {"fill": fill})

    def line(self, points: np.ndarray, fill: Color, width: int = 1, joint: str | None = None) -> None:
        self._add("line", points, None, {"fill": fill, "width": width, "joint": joint})

    def flush(self, draw: ImageDraw.ImageDraw, projector: Projector) -> None:
        if not self.ops:
            return
        xy = np.concatenate(self.points)
        z = self.face.depth(xy)
        for (_, start, stop, _), depth in zip(self.ops, self.depths):
            if depth is not None:
                z[start:stop] = depth
        flat = projector(xy, z).ravel().tolist()
        for kind, start, stop, style in self.ops:
            coords = flat[2 * start : 2 * stop]
            if kind == "polygon":
                draw.polygon(coords, fill=style["fill"])
            else:
                draw.line(coords, fill=style["fill"], width=style["width"], joint=style["joint"])
        self.ops, self.points, self.depths, self.count = [], [], [], 0


@dataclass
class _Sketch:
    """What every drawing step needs: the face, the draw list, the skin colours and the line widths."""

    face: FaceGeometry
    ops: DrawList
    width: Callable[[float], int]  # canonical units → whole canvas pixels (at least 1)

    @property
    def params(self) -> FaceParams:
        return self.face.params

    @property
    def identity(self) -> dict[str, float]:
        return self.face.identity

    @property
    def skin(self) -> Color:
        return self.face.params.skin

    @property
    def dark_line(self) -> Color:
        return _shade(self.face.params.skin, 0.55)


def _draw_background(draw: ImageDraw.ImageDraw, size: int, params: FaceParams) -> None:
    background = params.background or {}
    top, bottom = background.get("top", (128, 128, 128)), background.get("bottom", (100, 100, 100))
    bands = 8
    for i in range(bands):
        color = _mix(top, bottom, (i + 0.5) / bands)
        y0, y1 = size * i / bands, size * (i + 1) / bands
        draw.rectangle([0, y0, size, y1], fill=color)
    for shape in background.get("shapes", []):
        x0, y0, x1, y1 = (v * size for v in shape["box"])
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        if shape["kind"] == 0:
            draw.rectangle(box, fill=tuple(shape["color"]))
        else:
            draw.ellipse(box, fill=tuple(shape["color"]))


def _draw_body(sketch: _Sketch) -> None:
    """Neck and shoulders (flat, at depth 0)."""
    neck = np.array([[-0.45, 0.6], [0.45, 0.6], [0.5, 2.2], [-0.5, 2.2]])
    sketch.ops.polygon(neck, fill=_shade(sketch.skin, 0.85), depth=np.zeros(4))
    shoulders = np.array([[-2.2, 2.0], [-0.5, 1.55], [0.5, 1.55], [2.2, 2.0], [2.4, 3.5], [-2.4, 3.5]])
    sketch.ops.polygon(shoulders, fill=sketch.params.clothes, depth=np.zeros(6))


def _draw_head(sketch: _Sketch) -> None:
    """Long hair behind the head (style 1), ears, the head, and hair on top (every style but 2)."""
    face, identity, ops, skin, hair = sketch.face, sketch.identity, sketch.ops, sketch.skin, sketch.params.hair
    style = int(identity["hair_style"])
    forehead = face.forehead(15)
    head = np.concatenate([face.jaw(25), forehead[1:-1]])
    if style == 1:
        back = np.concatenate([np.array([[1.18, 1.1]]), forehead * [1.14, 1.12], np.array([[-1.18, 1.1]])])
        ops.polygon(back, fill=hair, depth=np.full(len(back), -0.2))
    for sign in (-1.0, 1.0):
        ear = ellipse(sign * (identity["face_w"] + 0.02), identity["ear_y"], 0.12, 0.22, 12)
        ops.polygon(ear, fill=_shade(skin, 0.92), depth=np.full(len(ear), -0.05))
    ops.polygon(head, fill=skin)
    if style != 2:
        t = grid(0, math.pi, 15)
        # Inner edge: the hairline across the forehead, the head outline (slightly inside) at the temples.
        fringe_x = 0.97 * forehead[:, 0]
        fringe_y = identity["hairline"] + 0.12 * np.sin(3 * t) ** 2 * (style == 3) + 0.15 * (np.abs(np.cos(t)) ** 3)
        fringe_y = np.maximum(fringe_y, np.minimum(forehead[:, 1], identity["ear_y"] - 0.15))
        top = forehead * [1.05, 1.06] + [0, -0.04]
        cap = np.concatenate([top, np.stack([fringe_x, fringe_y], axis=-1)[::-1]])
        ops.polygon(cap, fill=hair)


def _draw_eye(sketch: _Sketch, side: int) -> None:
    """Sclera, iris, lid covers and lines (AU5/6/7), crow's feet and raised cheek (AU6), and the cheek
    bunched above a pulled lip corner (AU12, one-sided in contempt)."""
    face, identity, ops, params, width = sketch.face, sketch.identity, sketch.ops, sketch.params, sketch.width
    skin, dark_line = sketch.skin, sketch.dark_line
    upper, lower = face.eye(side, grid(-1.0, 1.0, 13))
    sclera = np.concatenate([upper, lower[::-1][1:-1]])
    ops.polygon(sclera, fill=(236, 236, 230))
    sign = -1.0 if side == 0 else 1.0
    cx, cy = sign * identity["eye_sep"] + 0.012 * params.yaw / 25.0, identity["eye_y"] + 0.005
    ops.polygon(ellipse(cx, cy, identity["iris_r"], identity["iris_r"], 14), fill=params.iris)
    ops.polygon(ellipse(cx, cy, identity["iris_r"] * 0.45, identity["iris_r"] * 0.45, 10), fill=(10, 10, 10))
    cover_h = 0.16
    ops.polygon(np.concatenate([upper, (upper + [0, -cover_h])[::-1]]), fill=skin)
    ops.polygon(np.concatenate([lower, (lower + [0, cover_h])[::-1]]), fill=skin)
    ops.line(upper, fill=(30, 22, 18), width=width(0.028), joint="curve")
    au6, au7 = face.au(6, side), face.au(7, side)
    ops.line(lower, fill=_mix(skin, dark_line, 0.35 + 0.5 * max(au6, au7)), width=width(0.014 + 0.012 * max(au6, au7)))
    if au6 > 0.05:  # crow's feet at the outer corner
        ox = sign * (identity["eye_sep"] + identity["eye_w"] + 0.04)
        color = _mix(skin, dark_line, min(1.0, 0.9 * au6))
        for dy in (-0.05, 0.0, 0.05):
            segment = np.array([[ox, identity["eye_y"] + dy * 0.6], [ox + sign * 0.1, identity["eye_y"] + dy * 1.6]])
            ops.line(segment, fill=color, width=width(0.018))
    if au6 > 0.05:  # raised, rosy cheek with an infraorbital crease
        ccx, ccy = sign * (identity["eye_sep"] + 0.04), identity["eye_y"] + 0.36 - 0.09 * au6
        ops.polygon(ellipse(ccx, ccy, 0.2, 0.12, 14), fill=_mix(skin, (225, 120, 110), 0.35 * min(au6, 1.2)))
        crease = ellipse(ccx, ccy - 0.02, 0.2, 0.12, 16)[9:16]
        ops.line(crease, fill=_mix(skin, dark_line, 0.7 * au6), width=width(0.018))
    au12 = face.au(12, side)
    if au12 > 0.3:
        bulge = ellipse(sign * (identity["mouth_w"] + 0.1), identity["mouth_y"] - 0.2 - 0.05 * au12, 0.14, 0.1, 12)
        ops.polygon(bulge, fill=_mix(skin, (255, 240, 225), 0.2 * min(au12, 1.5)))


def _draw_forehead_lines(sketch: _Sketch) -> None:
    """Forehead wrinkles (AU1 centre, AU2 full width) and glabella furrows (AU4)."""
    face, identity, ops, width = sketch.face, sketch.identity, sketch.ops, sketch.width
    skin, dark_line = sketch.skin, sketch.dark_line
    au1, au2 = face.au(1), face.au(2)
    strength = max(au1, au2)
    if strength > 0.15:
        extent = 0.25 + 0.35 * (au2 / max(strength, 1e-6))
        base_y = identity["eye_y"] - identity["brow_gap"] - 0.2
        color = _mix(skin, dark_line, min(1.0, 0.8 * strength))
        for k in range(3):
            xs = extent * grid(-1.0, 1.0, 9)
            ys = base_y - 0.09 * k - 0.025 * np.cos(xs / extent * math.pi / 2) * (1 + au1)
            if ys.min() < identity["hairline"] + 0.05 and int(identity["hair_style"]) != 2:
                continue  # under the hair
            ops.line(np.stack([xs, ys], axis=-1), fill=color, width=width(0.016))
    au4 = face.au(4)
    if au4 > 0.15:
        color = _mix(skin, dark_line, min(1.0, 0.9 * au4))
        top = identity["eye_y"] - identity["brow_gap"] - 0.08
        for sx in (-0.045, 0.045):
            ops.line(np.array([[sx, top], [sx * 0.7, top + 0.14]]), fill=color, width=width(0.02))


def _draw_brows(sketch: _Sketch) -> None:
    brow_color = _mix(sketch.params.hair, (20, 15, 12), 0.4)
    for side in (0, 1):
        line, thick = sketch.face.brow(side, 7)
        half = np.stack([np.zeros(7), thick / 2], -1)
        sketch.ops.polygon(np.concatenate([line - half, (line + half)[::-1]]), fill=brow_color)


def _draw_nose(sketch: _Sketch) -> np.ndarray:
    """Bridge side line, wings, nostrils (wider with AU9) and the nose wrinkles of AU9; returns the
    nose landmarks (27-35, canonical)."""
    face, identity, ops, width = sketch.face, sketch.identity, sketch.ops, sketch.width
    skin = sketch.skin
    nose = face.nose()
    au9 = face.au(9)
    side_line = np.array([[nose[0, 0] - 0.07, nose[0, 1] + 0.05], [nose[3, 0] - 0.09, nose[3, 1] - 0.03]])
    ops.line(side_line, fill=_mix(skin, sketch.dark_line, 0.35), width=width(0.016))
    wing_left = ellipse(nose[4, 0] + 0.02, nose[4, 1] - 0.03, 0.06, 0.045, 10)
    wing_right = ellipse(nose[8, 0] - 0.02, nose[8, 1] - 0.03, 0.06, 0.045, 10)
    for wing in (wing_left, wing_right):
        ops.polygon(wing, fill=_shade(skin, 0.92))
    for nostril in (nose[5], nose[7]):
        ops.polygon(ellipse(nostril[0], nostril[1] - 0.01, 0.035 + 0.012 * au9, 0.018, 8), fill=_shade(skin, 0.45))
    if au9 > 0.1:
        color = _mix(skin, (40, 25, 20), min(0.85, 0.7 * au9))
        y0 = identity["eye_y"] + 0.02
        for k in range(3):
            xs = grid(-0.12, 0.12, 5)
            ys = y0 + 0.055 * k + 0.025 * (xs / 0.12) ** 2
            ops.line(np.stack([xs, ys], -1), fill=color, width=width(0.025))
        for sign in (-1.0, 1.0):
            segment = np.array(
                [
                    [sign * 0.09, y0 + 0.05],
                    [sign * (identity["eye_sep"] - identity["eye_w"] * 0.6), identity["eye_y"] + 0.09],
                ]
            )
            ops.line(segment, fill=color, width=width(0.016))
    return nose


def _draw_mouth(sketch: _Sketch, nose: np.ndarray) -> dict[str, np.ndarray]:
    """Nasolabial folds (AU6/9/10/11/12), lips, the opening with teeth, the closed lips' line and the
    dimples (AU14); returns the lip curves."""
    face, ops, params, width = sketch.face, sketch.ops, sketch.params, sketch.width
    skin, dark_line = sketch.skin, sketch.dark_line
    lips = face.mouth_curves(grid(-1.0, 1.0, 21))
    x = lips["x"]
    au9, au10 = face.au(9), face.au(10)
    for side, sign in ((0, -1.0), (1, 1.0)):
        fold = min(
            1.0, 0.5 * face.au(11, side) + 0.5 * face.au(12, side) + 0.35 * au9 + 0.5 * au10 + 0.2 * face.au(6, side)
        )
        if fold > 0.12:
            end = 0 if side == 0 else -1
            corner = np.array([x[end], 0.5 * (lips["upper_in"][end] + lips["lower_in"][end])])
            start = np.array([sign * (nose[8, 0] * 1.0 + 0.06), nose[8, 1] - 0.05])
            stop = corner + [sign * 0.08, 0.04]
            middle = (start + stop) / 2 + [sign * 0.07, 0.0]
            ops.line(
                np.array([start, middle, stop]),
                fill=_mix(skin, dark_line, 0.9 * fold),
                width=width(0.02 + 0.015 * fold),
                joint="curve",
            )
    outer = np.concatenate([np.stack([x, lips["upper_out"]], -1), np.stack([x, lips["lower_out"]], -1)[::-1]])
    ops.polygon(outer, fill=params.lips)
    gap = lips["lower_in"] - lips["upper_in"]
    if gap.max() > 0.012:
        opening = np.concatenate([np.stack([x, lips["upper_in"]], -1), np.stack([x, lips["lower_in"]], -1)[::-1]])
        ops.polygon(opening, fill=(60, 18, 22))
        teeth_h = 0.06
        teeth_bottom = np.minimum(lips["upper_in"] + teeth_h, lips["lower_in"])
        upper_teeth = np.concatenate(
            [np.stack([x * 0.96, lips["upper_in"]], -1), np.stack([x * 0.96, teeth_bottom], -1)[::-1]]
        )
        ops.polygon(upper_teeth, fill=(242, 240, 230))
        lower_teeth_h = 0.04 * min(1.0, face.au(16) + 0.5 * face.au(20))
        if lower_teeth_h > 0.01:
            teeth_top = np.maximum(lips["lower_in"] - lower_teeth_h, teeth_bottom)
            lower_teeth = np.concatenate(
                [np.stack([x * 0.9, teeth_top], -1), np.stack([x * 0.9, lips["lower_in"]], -1)[::-1]]
            )
            ops.polygon(lower_teeth, fill=(230, 228, 215))
    else:
        lip_line = np.stack([x, 0.5 * (lips["upper_in"] + lips["lower_in"])], -1)
        ops.line(lip_line, fill=_shade(params.lips, 0.45), width=width(0.02), joint="curve")
    for side, sign in ((0, -1.0), (1, 1.0)):  # dimples beside the corners
        au14 = face.au(14, side)
        if au14 > 0.1:
            end = 0 if side == 0 else -1
            corner = np.array([x[end], 0.5 * (lips["upper_in"][end] + lips["lower_in"][end])])
            bulge = ellipse(corner[0] + sign * 0.1, corner[1] - 0.03, 0.07, 0.1, 12)
            ops.polygon(bulge, fill=_mix(skin, (255, 235, 220), min(0.5, 0.3 * au14)))
            arc = ellipse(corner[0] + sign * 0.06, corner[1] - 0.01, 0.065, 0.11, 12)
            arc = arc[[9, 10, 11, 0, 1, 2, 3]] if side == 1 else arc[[3, 4, 5, 6, 7, 8, 9]]
            ops.line(arc, fill=_mix(skin, (40, 25, 20), min(0.85, 0.65 * au14)), width=width(0.055))
    return lips


def _draw_chin(sketch: _Sketch, lips: dict[str, np.ndarray]) -> None:
    """Chin raise (AU17): mentolabial furrow and chin wrinkles."""
    face, ops = sketch.face, sketch.ops
    au17 = face.au(17)
    if au17 <= 0.12:
        return
    color = _mix(sketch.skin, sketch.dark_line, min(1.0, 0.9 * au17))
    below_lip = float(lips["lower_out"].max()) + 0.06
    furrow = np.stack([grid(-0.17, 0.17, 7), below_lip + 0.025 * grid(-1, 1, 7) ** 2], -1)
    ops.line(furrow, fill=color, width=sketch.width(0.02))
    cy = (below_lip + sketch.identity["chin_y"] + 0.8 * face.jaw_drop()) / 2 + 0.02
    for dx, dy in ((-0.08, 0.0), (0.0, 0.04), (0.08, 0.0), (-0.04, 0.08), (0.05, 0.08)):
        ops.polygon(ellipse(dx, cy + dy, 0.018, 0.014, 6), fill=color)


def _fit_transform(
    face: FaceGeometry,
    params: FaceParams,
    size: int,
    framing: Framing = "scene",
) -> tuple[float | np.ndarray, tuple[float, float]]:
    """Scale and offset of the projection onto the ``size`` x ``size`` canvas.

    ``framing="scene"``: the face box height is ``face_height * size`` and the face is inside (a uniform
    scale). ``framing="face"``: the face box (the outline, forehead to chin) fills the whole canvas, with
    the per-axis scales ``(sx, sy)`` that an image processor's crop-and-resize of that box would apply.
    """
    probe = Projector(face, 1.0, (0.0, 0.0))
    outline = np.concatenate([face.jaw(17), face.forehead(15)])
    plane = probe.canonical_to_plane(outline)
    lo, hi = plane.min(axis=0), plane.max(axis=0)
    if framing == "face":
        scales = size / np.maximum(hi - lo, 1e-6)
        offset = -lo * scales
        return scales, (float(offset[0]), float(offset[1]))
    scale = params.face_height * size / max(hi[1] - lo[1], 1e-6)
    margin = 0.03 * size
    extent = (hi - lo) * scale
    if extent.max() > size - 2 * margin:
        scale *= (size - 2 * margin) / extent.max()
        extent = (hi - lo) * scale
    mid = (lo + hi) / 2 * scale
    centre = np.array(params.center) * size
    half = extent / 2
    centre = np.clip(centre, margin + half, size - margin - half)
    offset = centre - mid
    return float(scale), (float(offset[0]), float(offset[1]))


def _finish(
    image: Image.Image, params: FaceParams, image_size: int, supersample: int, rng: np.random.Generator
) -> Image.Image:
    """Downsample, then blur, directional lighting with a colour cast, and Gaussian pixel noise."""
    if supersample > 1:
        image = image.resize((image_size, image_size), Image.Resampling.BOX)
    if params.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(params.blur))
    pixels = np.asarray(image, dtype=np.float32)
    position = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size - 0.5
    direction = math.cos(params.light_angle) * position[None, :] + math.sin(params.light_angle) * position[:, None]
    light = params.light_gain * (1.0 + params.light_slope * direction)
    pixels = pixels * (light[:, :, None] * np.asarray(params.color_cast, dtype=np.float32)[None, None, :])
    if params.noise > 0:
        pixels += rng.standard_normal(size=pixels.shape, dtype=np.float32) * np.float32(params.noise)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")


def render_face(
    params: FaceParams,
    image_size: int = DEFAULT_IMAGE_SIZE,
    rng: np.random.Generator | None = None,
    supersample: int = 2,
    framing: Framing = "scene",
) -> tuple[Image.Image, np.ndarray, tuple[int, int, int, int]]:
    """Draw one face.

    Args:
        params: what to draw (AUs, pose, identity, nuisance), e.g. from
            :func:`~affectnetplus_hf.synthetic.parameters.draw_face_params`.
        image_size: output side in pixels (square RGB image).
        rng: generator for the pixel noise (``None``: a generator seeded with 0).
        supersample: drawing resolution factor (antialiasing); 1 is fastest.
        framing: ``"scene"`` (a face in a scene, the AffectNet part: ``params.face_height`` and
            ``params.center`` place it) or ``"face"`` (a face crop, the multi-annotated part as in FER+:
            the face box fills the image, stretched as a crop-and-resize of that box would be).

    Returns:
        ``(image, landmarks, face_box)``: the PIL RGB image, the (68, 2) float32 iBUG landmarks in output
        pixels (after the head pose), and the face box ``(x, y, w, h)`` in output pixels (the drawn face
        outline, forehead to chin).
    """
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
    if framing not in ("scene", "face"):
        raise ValueError(f"framing must be 'scene' or 'face', got {framing!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    face = FaceGeometry(params)
    size = image_size * supersample
    scale, offset = _fit_transform(face, params, size, framing)
    projector = Projector(face, scale, offset)
    pixels_per_unit = float(np.sqrt(np.prod(np.broadcast_to(scale, (2,)))))

    def width(units: float) -> int:
        return max(1, int(round(units * pixels_per_unit)))

    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    _draw_background(draw, size, params)
    sketch = _Sketch(face, DrawList(face), width)
    _draw_face_parts(sketch)
    sketch.ops.flush(draw, projector)
    image = _finish(image, params, image_size, supersample, rng)
    landmarks, box = _drawn_landmarks_and_box(face, projector, supersample, image_size)
    return image, landmarks, box


def _draw_face_parts(sketch: _Sketch) -> None:
    """Queue every part of the face on ``sketch.ops``, back to front."""
    _draw_body(sketch)
    _draw_head(sketch)
    for side in (0, 1):
        _draw_eye(sketch, side)
    _draw_forehead_lines(sketch)
    _draw_brows(sketch)
    nose = _draw_nose(sketch)
    lips = _draw_mouth(sketch, nose)
    _draw_chin(sketch, lips)


def _drawn_landmarks_and_box(
    face: FaceGeometry, projector: Projector, supersample: int, image_size: int
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The (68, 2) float32 landmarks and the face box ``(x, y, w, h)`` of the drawn outline, in output pixels."""
    landmarks = (projector(face.landmarks()) / supersample).astype(np.float32)
    outline = projector(np.concatenate([face.jaw(25), face.forehead(15)])) / supersample
    lo = np.clip(np.floor(outline.min(axis=0)), 0, image_size - 1)
    hi = np.clip(np.ceil(outline.max(axis=0)), 0, image_size)
    box = (int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1]))
    return landmarks, box


__all__ = ["DrawList", "render_face"]
