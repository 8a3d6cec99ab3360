"""Head pose (yaw, pitch, roll in degrees, `docs/method.md#metadata`) from 68 landmarks with ``cv2.solvePnP``.

The paper (Sec. 3.5.4) estimated head pose with ASMNet, whose weights are not published; this package fits a
3-D mean face (:func:`mean_face_68`) to a face's 2-D iBUG-68 landmarks with OpenCV's Perspective-n-Point solver
(extra ``pose``: ``opencv-python-headless``). Conventions of every ``head_pose_*`` column in this package:

- Camera frame: x to the image right, y down, z away from the camera (OpenCV). The head's frame is the camera
  frame of a face looking straight into the camera; the mean face's nose points to -z.
- ``yaw > 0``: the face turns to **its own left**, i.e. the nose moves to the image right.
- ``pitch > 0``: the face turns **up** (chin raised), the nose moves up in the image.
- ``roll > 0``: the head tilts towards **its own left shoulder**, i.e. the top of the head moves to the image
  right (clockwise as the image is viewed).
- ``R = Rz(roll) @ Rx(-pitch) @ Ry(-yaw)`` maps head to camera coordinates (yaw first, about the head's vertical
  axis, then pitch, then roll in the image plane); degrees in (-180, 180], yaw and roll wrapped, pitch in [-90, 90].
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..records import FaceRecord
from .base import HEAD_POSE_COLUMNS, IMAGE_SIZE_KEY, LANDMARKS_68_COLUMN, LANDMARKS_68_FLIP, Annotator

logger = logging.getLogger(__name__)


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def euler_to_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head-to-camera rotation matrix of a pose in degrees (module conventions)."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    return _rot_z(r) @ _rot_x(-p) @ _rot_y(-y)


def rotation_to_euler(rotation: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees of a head-to-camera rotation (inverse of
    :func:`euler_to_rotation`; at pitch ±90° the yaw/roll split is arbitrary, roll is set to 0)."""
    m = np.asarray(rotation, dtype=np.float64)
    # m = Rz(r) Rx(p') Ry(y') with p' = -pitch, y' = -yaw; its last row is [-cos p' sin y', sin p', cos p' cos y'].
    sin_p = float(np.clip(m[2, 1], -1.0, 1.0))
    p_prime = np.arcsin(sin_p)
    if abs(sin_p) < 1.0 - 1e-9:
        y_prime = np.arctan2(-m[2, 0], m[2, 2])
        r = np.arctan2(-m[0, 1], m[1, 1])
    else:  # gimbal lock: only y' ± r is defined
        r = 0.0
        y_prime = np.arctan2(m[1, 0], m[0, 0]) if sin_p > 0 else np.arctan2(-m[1, 0], m[0, 0])
    yaw, pitch, roll = np.rad2deg([-y_prime, -p_prime, r])
    return float(yaw), float(pitch), float(roll)


def mean_face_68() -> np.ndarray:
    """A 3-D mean face: ``(68, 3)`` float64 points of the iBUG-68 scheme in millimetres.

    Built here from average adult facial proportions (not copied from any data set), in the head
    frame of the module conventions (x to the face's left = image right, y down, z away from the
    camera), origin between the eyes on the inner-eye-corner plane:
    inter-pupillary ~62 mm, outer eye corners 90 mm apart, inner 34 mm; nasion 8 mm above the eye
    line, nose tip 29 mm below it and 32 mm in front; subnasale 38 mm; mouth 50 mm wide at 62 mm,
    its corners 32 mm behind the nose tip; chin (menton) at 110 mm, 37 mm behind the tip; the
    outline runs on an ellipse 140 mm wide whose ends (points 0/16, at the ears) lie 112 mm behind
    the tip. Cross-check: the MediaPipe face mesh's own 3-D output (its learned face prior, mapped
    with ``MEDIAPIPE_TO_68``, averaged over 40 frontal synthetic faces) puts these depths, in
    outer-eye-corner distances behind the nose tip, at: ear-level outline 1.09 (here 1.24), jaw
    point 4 0.81 (0.83), chin 0.49 (0.41), outer eye corners 0.46 (0.44), inner 0.40 (0.38),
    nasion 0.17 (0.27), mouth corners 0.43 (0.36). Only the right half of the face
    (image left, x < 0) and the midline are listed; the left half is mirrored
    (:data:`~affectnetplus_hf.metadata.base.LANDMARKS_68_FLIP`).
    """
    points = np.full((68, 3), np.nan)
    # outline 0..8 (image left half, ending at the chin): ellipse in x/y, depth growing to the ears
    for i in range(9):
        phi = np.pi * i / 16.0
        points[i] = (-70.0 * np.cos(phi), 5.0 + 105.0 * np.sin(phi), 5.0 + 75.0 * np.cos(phi) ** 2)
    # right brow 17..21, outer end -> inner end
    for k, t in enumerate(np.linspace(0.0, 1.0, 5)):
        points[17 + k] = (-58.0 + 44.0 * t, -16.0 - 9.0 * np.sin(np.pi * (0.2 + 0.7 * t)), 12.0 - 18.0 * t)
    # nose bridge 27..30 (nasion -> tip), lower nose 31..33 (right wing -> subnasale)
    points[27:31] = [(0.0, -8.0, -8.0), (0.0, 5.0, -15.0), (0.0, 17.0, -23.0), (0.0, 29.0, -32.0)]
    points[31:34] = [(-14.0, 38.0, -10.0), (-7.0, 40.0, -17.0), (0.0, 41.0, -19.0)]
    # right eye 36..41: outer corner, upper lid x2, inner corner, lower lid x2
    points[36:42] = [(-45.0, 0.0, 8.0), (-38.0, -5.0, -1.0), (-27.0, -5.5, -2.0),
                     (-17.0, 0.0, 2.0), (-27.0, 4.0, -1.0), (-38.0, 3.5, 0.0)]  # fmt: skip
    # outer lips 48..51 (right corner -> upper mid), 57..59 (lower mid -> right)
    points[48:52] = [(-25.0, 62.0, 0.0), (-16.0, 57.0, -12.0), (-6.0, 54.0, -18.0), (0.0, 55.0, -20.0)]
    points[57:60] = [(0.0, 72.0, -15.0), (-7.0, 71.0, -14.0), (-16.0, 68.0, -10.0)]
    # inner lips 60..62 (right corner -> upper mid), 66..67 (lower mid -> right)
    points[60:63] = [(-21.0, 62.0, -2.0), (-8.0, 60.0, -15.0), (0.0, 60.0, -16.0)]
    points[66:68] = [(0.0, 64.0, -14.0), (-8.0, 64.0, -13.0)]
    mirror = np.array([-1.0, 1.0, 1.0])
    for i, j in enumerate(LANDMARKS_68_FLIP):
        if np.isnan(points[i]).any():
            points[i] = points[j] * mirror
    if np.isnan(points).any():  # pragma: no cover - construction bug guard
        raise AssertionError("mean face construction left points undefined")
    return points


#: Landmark sets for the fit: ``"all"`` 68 points; ``"rigid"`` brows, nose and eyes (17-47) — no
#: outline (a 2-D silhouette that slides over the 3-D face as it turns) and no mouth (moves with
#: the expression).
POINT_SETS: dict[str, tuple[int, ...]] = {"all": tuple(range(68)), "rigid": tuple(range(17, 48))}


def camera_matrix(image_width: float, image_height: float, focal_length_factor: float = 1.0) -> np.ndarray:
    """Pinhole intrinsics for an uncalibrated image: focal ``factor * max(W, H)`` pixels,
    principal point at the image centre."""
    focal = focal_length_factor * max(image_width, image_height)
    return np.array([[focal, 0.0, image_width / 2.0], [0.0, focal, image_height / 2.0], [0.0, 0.0, 1.0]])


def project_points(
    points_3d: np.ndarray, rotation: np.ndarray, translation: np.ndarray, camera: np.ndarray
) -> np.ndarray:
    """Pinhole projection of head-frame points (``(N, 3)``) to ``(N, 2)`` pixels."""
    cam = points_3d @ np.asarray(rotation).T + np.asarray(translation).reshape(1, 3)
    uvw = cam @ np.asarray(camera).T
    return uvw[:, :2] / uvw[:, 2:3]


def estimate_head_pose(
    landmarks_68: np.ndarray,
    image_size: tuple[int, int],
    *,
    focal_length_factor: float = 1.0,
    model_points: np.ndarray | None = None,
    point_indices: Sequence[int] | None = None,
) -> tuple[float, float, float] | None:
    """``(yaw, pitch, roll)`` degrees of a face from its ``(68, 2)`` landmarks, or ``None`` when
    the solver fails or puts the face behind the camera.

    Args:
        landmarks_68: iBUG-68 points in pixels.
        image_size: ``(width, height)`` of the image the points are in.
        focal_length_factor: focal length as a multiple of ``max(W, H)``.
        model_points: ``(68, 3)`` head model, default :func:`mean_face_68`.
        point_indices: fit only these of the 68 points (default: all).
    """
    import cv2

    image_points = np.asarray(landmarks_68, dtype=np.float64).reshape(68, 2)
    model = mean_face_68() if model_points is None else np.asarray(model_points, dtype=np.float64)
    if point_indices is not None:
        image_points, model = image_points[list(point_indices)], model[list(point_indices)]
    camera = camera_matrix(image_size[0], image_size[1], focal_length_factor)
    distortion = np.zeros(4)
    ok, rvec, tvec = cv2.solvePnP(model, image_points, camera, distortion, flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        return None
    ok, rvec, tvec = cv2.solvePnP(
        model, image_points, camera, distortion, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok or float(tvec[2, 0]) <= 0.0:
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    return rotation_to_euler(rotation)


class SolvePnPHeadPoseAnnotator(Annotator):
    """``head_pose_yaw/pitch/roll`` from ``landmarks_68`` filled by an earlier annotator
    (``synthetic``, ``passthrough``, ``csv:PATH``, ``dlib``, ``mediapipe``); null where there are
    no landmarks or the solver fails. Needs the extra ``pose`` (opencv-python-headless).

    Args:
        focal_length_factor: focal length / ``max(W, H)`` (1.0 ~ a normal lens; large values
            approach the orthographic projection of the synthetic renderer).
        points: a :data:`POINT_SETS` name.
    """

    name = "solvepnp"
    columns = HEAD_POSE_COLUMNS
    requires = (LANDMARKS_68_COLUMN,)
    needs_image_size = True

    def __init__(self, focal_length_factor: float = 1.0, points: str = "all") -> None:
        try:
            importlib.import_module("cv2")
        except ImportError as err:
            raise ImportError(
                "the 'solvepnp' head-pose annotator needs OpenCV: pip install 'affectnetplus-hf[pose]'"
            ) from err
        if not focal_length_factor > 0:
            raise ValueError(f"focal_length_factor must be > 0, got {focal_length_factor}")
        if points not in POINT_SETS:
            raise ValueError(f"solvepnp points must be one of {sorted(POINT_SETS)}, got {points!r}")
        self.focal_length_factor = float(focal_length_factor)
        self.points = points
        self.model_points = mean_face_68()

    def annotate_batch(self, records: Sequence[FaceRecord], images, known):
        out: dict[str, list[Any]] = {c: [] for c in self.columns}
        for i in range(len(records)):
            landmarks = known[LANDMARKS_68_COLUMN][i]
            pose = None
            if landmarks is not None:
                size = known[IMAGE_SIZE_KEY][i]
                pose = estimate_head_pose(
                    landmarks,
                    size,
                    focal_length_factor=self.focal_length_factor,
                    model_points=self.model_points,
                    point_indices=POINT_SETS[self.points],
                )
            for column, value in zip(self.columns, pose or (None, None, None)):
                out[column].append(value)
        return out
