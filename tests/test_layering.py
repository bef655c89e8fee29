"""The layering of SPEC §1 as checked contracts: app/ and the backends never
import ui/; c_backend/ imports neither Qt nor OpenGL; app/ imports Qt/GL only
when a GL manager is opened."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    assert exe, "import-linter is not installed (it is in the test extras)"
    r = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 3 kept, 0 broken" in r.stdout, r.stdout


def test_core_and_c_backend_import_no_qt_or_gl():
    code = (
        "import sys, numpy as np\n"
        "import app, app.cli, app.trace, app.bench, app.reference, app.scenarios, c_backend.manager\n"
        "import app.scheduler, app.numpy_executor, bufferscope, gl_backend\n"
        "m = app.open_manager('c', (4, 4)); m.enqueue(app.Fill(((0, 4), (0, 4)), 1.0));"
        " m.synchronize(timeout=10); m.close()\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('PyQt6', 'OpenGL', 'ui')]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_programs_import_the_public_api_as_bufferscope():
    code = (
        "import bufferscope as bs, app\n"
        "assert set(bs.__all__) >= set(app.__all__) - {'__version__'}, set(app.__all__) - set(bs.__all__)\n"
        "with bs.open_manager('numpy', (2, 3)) as m:\n"
        "    m.enqueue(bs.Fill(((0, 2), (0, 3)), 1.5)); m.set_many([[1, 2]], [4.0])\n"
        "    assert m.synchronize(timeout=10) == 1\n"
        "    assert m.front().tolist() == [[1.5, 1.5, 1.5], [1.5, 1.5, 4.0]]\n"
        "import sys; assert not [k for k in sys.modules if k.split('.')[0] in ('PyQt6', 'OpenGL', 'ui')]\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
