"""The buffer view (ui/buffer_view.py): rendered pixels read back for known values.

GL tests: skipped locally where no OpenGL 3.3 context can be made, FAIL on CI.
"""

from __future__ import annotations

import numpy as np
import pytest

from gl_backend._context import dispose
from ui import colormaps  # noqa: I001
from ui.buffer_view import BufferView
from ui.testing import close_enough, pixel, shown_view  # prepares Qt first

pytestmark = pytest.mark.gl

VIRIDIS = colormaps.lut("viridis")


@pytest.fixture
def view(qtbot):
    with shown_view(qtbot, 400) as v:
        yield v


def known_values() -> np.ndarray:
    """8x8: left half 0, right half 1, a NaN, a +Inf and a -Inf cell."""
    a = np.zeros((8, 8), np.float32)
    a[:, 4:] = 1.0
    a[2, 5] = np.nan
    a[6, 1] = np.inf
    a[6, 2] = -np.inf
    return a


def color_at(img, v: BufferView, row: int, col: int):
    x, y = v.texel_center(row, col)
    return pixel(img, x, y)


def test_known_values_render_as_the_colormap(view):
    view.state.set_levels(0.0, 1.0)
    view.set_front(known_values(), epoch=1)
    img = view.grabFramebuffer()
    assert view.gl_info["renderer"]
    for row in range(8):
        for col in range(8):
            got = color_at(img, view, row, col)
            if (row, col) == (2, 5):
                want = colormaps.NAN_COLOR
            elif (row, col) == (6, 1):
                want = colormaps.POSINF_COLOR
            elif (row, col) == (6, 2):
                want = colormaps.NEGINF_COLOR
            else:
                want = tuple(VIRIDIS[255 if col >= 4 else 0])
            assert close_enough(got, want), ((row, col), got, want)
    # Outside the image: the background.
    assert close_enough(pixel(img, 1, 1), colormaps.BACKGROUND_COLOR) or view.texel_at(1, 1)


def test_auto_levels_are_the_exact_finite_min_max(view):
    a = known_values() * 3.0 - 1.0        # -1 .. 2, with NaN and ±Inf
    view.state.set_auto_levels(True)
    view.set_front(a, epoch=1)
    assert view.state.levels == (-1.0, 2.0)
    img = view.grabFramebuffer()
    assert close_enough(color_at(img, view, 0, 0), VIRIDIS[0])
    assert close_enough(color_at(img, view, 0, 7), VIRIDIS[255])


def test_other_colormaps_and_mid_values(view):
    a = np.array([[0.0, 0.5, 1.0]], np.float32)
    view.state.set_levels(0.0, 1.0)
    for name in colormaps.COLORMAPS:
        view.state.set_colormap(name)
        view.set_front(a, epoch=1)
        img = view.grabFramebuffer()
        want = colormaps.apply(a, (0.0, 1.0), name)[0]
        for col in range(3):
            assert close_enough(color_at(img, view, 0, col), want[col]), (name, col)


def test_only_changed_rows_are_uploaded(view):
    a = known_values()
    view.state.set_levels(0.0, 1.0)
    view.set_front(a, epoch=1)
    view.grabFramebuffer()
    b = a.copy()
    b[3, :] = 1.0
    view.set_front(b, epoch=2)
    img = view.grabFramebuffer()
    assert view.uploaded_rows == 1
    assert close_enough(color_at(img, view, 3, 0), VIRIDIS[255])
    view.set_front(b.copy(), epoch=3)      # nothing changed: nothing uploaded
    view.grabFramebuffer()
    assert view.uploaded_rows == 0


def test_zoom_about_the_cursor_and_pan(view):
    view.set_front(known_values(), epoch=1)
    view.grabFramebuffer()
    from PyQt6.QtCore import QPointF

    p = QPointF(150.0, 220.0)
    cell = view.texel_at(p.x(), p.y())
    view.zoom_by(4.0, p)
    assert view.texel_at(p.x(), p.y()) == cell       # the texel under the cursor stays put
    before = view.texel_at(200, 200)
    view.pan_by(view.scale()[0], 0)                   # one texel to the right
    after = view.texel_at(200, 200)
    assert after == (before[0], before[1] - 1)


def test_grid_appears_when_zoomed_in(view):
    a = np.zeros((4, 4), np.float32)
    view.state.set_levels(0.0, 1.0)
    view.set_front(a, epoch=1)
    view.grabFramebuffer()
    assert view.scale()[0] > 50                      # 4 texels fill 400 px
    img = view.grabFramebuffer()
    x, y = view.texel_center(1, 1)
    edge_x = int(view.camera.offset[0] + 1 * view.scale()[0])  # left edge of column 1
    assert close_enough(pixel(img, x, y), VIRIDIS[0])
    assert not close_enough(pixel(img, edge_x, y), VIRIDIS[0])   # a darker grid line
    view.state.set_grid(False)
    img = view.grabFramebuffer()
    assert close_enough(pixel(img, edge_x, y), VIRIDIS[0])


def test_3d_buffer_shows_the_selected_slice(view):
    a = np.zeros((3, 4, 5), np.float32)
    a[2] = 1.0
    view.state.set_levels(0.0, 1.0)
    view.set_front(a, epoch=1)
    img = view.grabFramebuffer()
    assert close_enough(color_at(img, view, 1, 1), VIRIDIS[0])
    view.state.set_z(2)
    img = view.grabFramebuffer()
    assert close_enough(color_at(img, view, 1, 1), VIRIDIS[255])
    assert view.element_index(1, 3) == (2, 1, 3)


def test_1d_buffer_is_one_row(view):
    a = np.array([0, 1, 0, 1], np.float32)
    view.state.set_levels(0.0, 1.0)
    view.set_front(a, epoch=1)
    img = view.grabFramebuffer()
    assert close_enough(color_at(img, view, 0, 1), VIRIDIS[255])
    assert view.element_index(0, 3) == (3,)


def test_shift_drag_selects_a_region(view, qtbot):
    from PyQt6.QtCore import QPoint, Qt

    view.set_front(np.zeros((8, 8), np.float32), epoch=1)
    view.grabFramebuffer()
    x0, y0 = view.texel_center(1, 2)
    x1, y1 = view.texel_center(4, 6)
    with qtbot.waitSignal(view.sigRegionSelected, timeout=2000) as sig:
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                         QPoint(x0, y0))
        qtbot.mouseMove(view, QPoint(x1, y1))
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                           QPoint(x1, y1))
    assert sig.args[0] == ((1, 5), (2, 7))


def test_samples_a_shared_texture_without_upload(view):
    """The GL backend path: the view draws a texture made in another, shared context."""
    from OpenGL import GL
    from PyQt6.QtGui import QOffscreenSurface, QOpenGLContext

    share = QOpenGLContext.globalShareContext()
    if share is None or view.gl_info.get("shared") != "True":
        pytest.skip("contexts are not shared (AA_ShareOpenGLContexts was not set in time)")
    values = known_values()
    surface = QOffscreenSurface()
    surface.setFormat(share.format())
    surface.create()
    ctx = QOpenGLContext()
    ctx.setFormat(share.format())
    ctx.setShareContext(share)
    assert ctx.create()
    assert ctx.makeCurrent(surface)
    tex = int(GL.glGenTextures(1))
    GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
    GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_R32F, 8, 8, 0, GL.GL_RED, GL.GL_FLOAT, values)
    GL.glFinish()
    ctx.doneCurrent()
    try:
        view.state.set_levels(0.0, 1.0)
        view.set_front(np.full((8, 8), 0.5, np.float32), epoch=1)  # what a readback would give
        view.set_texture_source(lambda: (tex, 1))
        img = view.grabFramebuffer()
        assert view.using_shared_texture
        assert close_enough(color_at(img, view, 0, 0), VIRIDIS[0])
        assert close_enough(color_at(img, view, 0, 7), VIRIDIS[255])
        assert close_enough(color_at(img, view, 2, 5), colormaps.NAN_COLOR)
        # A provider that fails falls back to uploading, with a message, no exception.
        def broken():
            raise RuntimeError("texture gone")

        messages = []
        view.sigGLError.connect(messages.append)
        view.set_texture_source(broken)
        img = view.grabFramebuffer()
        assert not view.using_shared_texture
        assert messages and "texture gone" in messages[0]
        assert close_enough(color_at(img, view, 0, 0), VIRIDIS[128])
    finally:
        ctx.makeCurrent(surface)
        GL.glDeleteTextures(1, [tex])
        ctx.doneCurrent()
        dispose(surface, ctx)  # now, not whenever the garbage collector runs



def test_release_gl_then_show_again_draws_again(view, qtbot):
    """Closing frees the view's GL objects at once (not whenever the garbage
    collector destroys the widget); showing it again makes them anew."""
    view.state.set_levels(0.0, 1.0)
    view.set_front(known_values(), epoch=1)
    view.grabFramebuffer()
    view.close()
    assert view._released and not view.renderer.ok
    view.show()
    qtbot.waitExposed(view)
    img = view.grabFramebuffer()
    assert view.renderer.ok
    assert close_enough(color_at(img, view, 0, 7), VIRIDIS[255])
    assert close_enough(color_at(img, view, 2, 5), colormaps.NAN_COLOR)
