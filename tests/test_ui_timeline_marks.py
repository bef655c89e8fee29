"""The timeline's marks rasterized at once (``ui.timeline_geometry.mark_image``) are,
pixel for pixel, what drawing one ``fillRect`` per mark in order gave: overlapping
marks of different ops (the later shows), marks cut by either edge, an unknown op,
lanes without marks in between."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRectF
from PyQt6.QtGui import QColor, QImage, QPainter

import ui.testing  # noqa: F401  (prepares Qt first)
from ui.timeline import _MARK_ARGB, OP_BY_CODE
from ui.timeline_geometry import AXIS_H, LANE_H, mark_image

W, H = 300, AXIS_H + 6 * LANE_H


def one_by_one(xs, lanes, ops) -> QImage:
    img = QImage(W, H, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(QColor(250, 250, 250))
    p = QPainter(img)
    for x, lane, op in zip(xs, lanes, ops):
        color = OP_BY_CODE[op] if 0 <= op < len(OP_BY_CODE) else QColor(0, 0, 0)
        p.fillRect(QRectF(float(x) - 1.5, AXIS_H + lane * LANE_H + 4, 3, LANE_H - 8), color)
    p.end()
    return img


def at_once(xs, lanes, ops) -> QImage:
    img = QImage(W, H, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(QColor(250, 250, 250))
    x0 = np.floor(np.asarray(xs) - 1.0).astype(np.int64)
    lo, image = mark_image(x0, lanes, ops, _MARK_ARGB, W)
    q = QImage(image.data, W, image.shape[0], 4 * W, QImage.Format.Format_ARGB32_Premultiplied)
    p = QPainter(img)
    p.drawImage(QPointF(0, AXIS_H + lo * LANE_H + 4), q)
    p.end()
    return img


def pixels(img: QImage) -> np.ndarray:
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    return np.frombuffer(ptr, np.uint32).reshape(img.height(), -1)[:, :img.width()].copy()


def test_marks_at_once_are_the_marks_one_by_one(qapp):
    rng = np.random.default_rng(3)
    n = 2500
    xs = np.concatenate([rng.uniform(-4, W + 4, n), [0.2, 1.49, 1.5, 1.51, W - 0.5, W + 1.2],
                         np.arange(40, 60, 0.7)])
    lanes = np.concatenate([rng.choice([1, 2, 4], n), [1, 1, 1, 2, 4, 4],
                            np.full(len(np.arange(40, 60, 0.7)), 2)])
    ops = np.concatenate([rng.integers(-1, len(OP_BY_CODE) + 1, n), [0, 1, 2, 3, 4, 9],
                          np.arange(len(np.arange(40, 60, 0.7))) % len(OP_BY_CODE)])
    want, got = pixels(one_by_one(xs, lanes, ops)), pixels(at_once(xs, lanes, ops))
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} pixels differ"
    assert len(np.unique(want)) > 4, "the marks were drawn"
