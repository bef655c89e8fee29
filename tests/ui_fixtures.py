"""Window fixtures shared by the main-window tests (``tests/test_ui_*.py``).

A test module takes them with ``from ui_fixtures import make_window`` (pytest puts
``tests/`` on ``sys.path``; this file is not a conftest, which another owner keeps).
``windows(qtbot)`` is the part every variant shares — open windows, close them all
at teardown — for modules whose fixture does more (another default backend,
auto-sync off, a join before the close).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from ui.testing import open_window, require_gl  # prepares Qt first


@contextlib.contextmanager
def windows(qtbot, before_close: Callable = lambda w: None) -> Iterator[Callable]:
    """``make(**kwargs)`` -> a shown ``MainWindow`` (``ui.testing.open_window``); on
    exit each is handed to ``before_close``, closed, and checked: closing the window
    closes the manager."""
    made = []

    def make(**kwargs):
        w = open_window(qtbot, **kwargs)
        made.append(w)
        return w

    yield make
    for w in made:
        before_close(w)
        w.close()
        assert w.session.manager is None, "closing the window closes the manager"


@pytest.fixture
def make_window(qtbot):
    """make_window(**kwargs) -> a shown MainWindow; closed and checked at teardown.
    GL: skipped locally where no OpenGL 3.3 context can be made, FAIL on CI."""
    require_gl()
    with windows(qtbot) as make:
        yield make
