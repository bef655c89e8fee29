"""The command line (SPEC §6) and its output files: every bad argument is one line
on stderr and exit status 2, never a traceback; output files are atomic, follow
the umask, and a special file at the output path is refused, never replaced
(issue 12)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from app import atomic, sysmem
from app.cli import main as cli_main

HEADER = {"format": "bufferscope-trace", "version": 1, "shape": [4, 3], "dtype": "float32", "fill": 0.0}


def write_trace(path, lines=({"op": "fill", "region": [[0, 2], [0, 3]], "value": 1.5}, {"op": "sync"})):
    path.write_text("\n".join(json.dumps(o) for o in [HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def run_cli(argv, capsys):
    """``main(argv)``'s exit status (argparse's SystemExit included) and stderr."""
    try:
        rc = cli_main(argv)
    except SystemExit as exc:
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.err


def assert_one_line_error(rc, err, *words):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# -- special files at the output path ------------------------------------------------
def _special_files(tmp_path):
    """(name, path, check-it-is-still-there) for each kind of special file we can make."""
    target = tmp_path / "target.npy"
    target.write_bytes(b"keep me")
    made = []
    fifo = tmp_path / "fifo.npy"
    os.mkfifo(fifo)
    made.append(("fifo", fifo, lambda p: stat.S_ISFIFO(os.lstat(p).st_mode)))
    link = tmp_path / "link.npy"
    link.symlink_to(target)
    made.append(("symlink", link, lambda p: os.path.islink(p) and target.read_bytes() == b"keep me"))
    dangling = tmp_path / "dangling.npy"
    dangling.symlink_to(tmp_path / "nowhere.npy")
    made.append(("dangling symlink", dangling,
                 lambda p: os.path.islink(p) and not (tmp_path / "nowhere.npy").exists()))
    folder = tmp_path / "folder.npy"
    folder.mkdir()
    made.append(("directory", folder, lambda p: os.path.isdir(p) and not os.listdir(p)))
    if os.geteuid() == 0:  # a device node of our own (never /dev/null or /dev/full itself)
        dev = tmp_path / "null.npy"
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        made.append(("device", dev, lambda p: stat.S_ISCHR(os.lstat(p).st_mode)))
    return made


def test_special_files_are_refused_by_every_writing_command(tmp_path, capsys):
    trace = write_trace(tmp_path / "t.jsonl")
    files = _special_files(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for name, path, still_there in files:
        commands = [
            ["replay", str(trace), "--backend", "c", "--out", str(path)],
            ["export-perfetto", str(trace), "--out", str(path)],
            ["bench", "--quick", "--json", str(path)],
            ["screenshot", "--scenario", "waves", "--out", str(path)],
        ]
        for argv in commands:
            rc, err = run_cli(argv, capsys)
            assert_one_line_error(rc, err, str(path), "refusing to replace")
            assert still_there(path), f"{argv[0]} replaced the {name}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a temporary file was left behind"


def test_atomic_writers_refuse_special_files(tmp_path):
    for _name, path, still_there in _special_files(tmp_path):
        with pytest.raises(atomic.OutputPathError, match="refusing to replace"):
            atomic.save_npy(path, np.zeros(3))
        with pytest.raises(atomic.OutputPathError):
            atomic.write_via_path(path, lambda tmp: open(tmp, "w").close())
        assert still_there(path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_a_special_file_appearing_while_writing_is_not_replaced(tmp_path):
    out = tmp_path / "out.txt"
    with pytest.raises(atomic.OutputPathError):
        with atomic.atomic_open(out) as fh:
            fh.write("x")
            os.mkfifo(out)   # someone puts a FIFO there meanwhile
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert leftovers(tmp_path, {"out.txt"}) == []


def test_a_failed_out_leaves_no_temporary_file(tmp_path, capsys):
    trace = write_trace(tmp_path / "t.jsonl")
    (tmp_path / "d").mkdir()
    rc, err = run_cli(["replay", str(trace), "--out", str(tmp_path / "d")], capsys)
    assert_one_line_error(rc, err, "is a directory")
    rc, err = run_cli(["replay", str(trace), "--out", str(tmp_path / "missing" / "o.npy")], capsys)
    assert_one_line_error(rc, err, "does not exist")
    assert leftovers(tmp_path, {"t.jsonl", "d"}) == [] and not os.listdir(tmp_path / "d")


def test_a_rename_that_fails_leaves_no_temporary_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="cannot write .*out.npy"):
        atomic.save_npy(tmp_path / "out.npy", np.zeros(2))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_output_files_follow_the_umask(tmp_path, capsys, umask):
    trace = write_trace(tmp_path / "t.jsonl")
    old = os.umask(umask)
    try:
        assert cli_main(["replay", str(trace), "--out", str(tmp_path / "f.npy")]) == 0
        assert cli_main(["export-perfetto", str(trace), "--out", str(tmp_path / "p.json")]) == 0
        atomic.write_via_path(tmp_path / "v.png", lambda tmp: open(tmp, "wb").close())
        atomic.write_text(tmp_path / "w.txt", "x")
    finally:
        os.umask(old)
    for name in ("f.npy", "p.json", "v.png", "w.txt"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name


def test_replacing_a_regular_file_works(tmp_path):
    out = tmp_path / "f.npy"
    out.write_bytes(b"old")
    atomic.save_npy(out, np.arange(3, dtype=np.float32))
    assert np.load(out).tolist() == [0, 1, 2]


def test_write_via_path_names_the_users_path_not_its_temporary(tmp_path):
    out = tmp_path / "shot.png"

    def save(tmp):
        raise OSError(f"cannot write PNG {tmp}")

    with pytest.raises(OSError) as info:
        atomic.write_via_path(out, save)
    assert str(out) in str(info.value) and ".tmp" not in str(info.value)
    assert str(info.value).count("shot.png") == 1, str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_screenshot_into_a_missing_folder_names_the_given_path(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "shot.png"
    rc, err = run_cli(["screenshot", "--scenario", "waves", "--out", str(out)], capsys)
    assert_one_line_error(rc, err, str(out))
    assert ".png." not in err, "names a temporary file"


# -- bad arguments: one line, exit 2, never a traceback ------------------------------
def _bad_argvs(trace, out):
    return [
        ["replay", trace, "--out", out, "--timeout", "-1"],
        ["replay", trace, "--out", out, "--timeout", "nan"],
        ["replay", trace, "--out", out, "--timeout", "soon"],
        ["replay", trace, "--out", out, "--backend", "vulkan"],
        ["replay", trace],
        ["replay", "--out", out],
        ["replay", trace + ".missing", "--out", out],
        ["replay", trace, "--out", ""],
        ["gui", "--scenario", "nope"],
        ["gui", "--shape", "0x5"],
        ["gui", "--shape", "1x2x3x4"],
        ["gui", "--shape", "axb"],
        ["gui", "--shape", "1000000x1000000x1000"],
        ["gui", "--shape", "1" + "0" * 400],
        ["gui", "--backend", "vulkan"],
        ["--scenario", "nope"],
        ["screenshot", "--scenario", "nope", "--out", out + ".png"],
        ["screenshot", "--out", out + ".png"],
        ["screenshot", "--scenario", "waves", "--shape", "-3", "--out", out + ".png"],
        ["bench", "--backends", "c,vulkan"],
        ["bench", "--backends", ","],
        ["bench", "--bogus"],
        ["export-perfetto", trace],
        ["export-perfetto", trace + ".missing", "--out", out + ".json"],
        ["frobnicate"],
        ["--bogus"],
    ]


def test_every_bad_argument_is_one_line_and_exit_2(tmp_path, capsys):
    trace = str(write_trace(tmp_path / "t.jsonl"))
    out = str(tmp_path / "o.npy")
    for argv in _bad_argvs(trace, out):
        rc, err = run_cli(argv, capsys)
        assert rc == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
    assert leftovers(tmp_path, {"t.jsonl"}) == []


@pytest.mark.parametrize("argv,words", [
    (["replay", "{trace}", "--out", "{out}", "--timeout", "-1"], ["--timeout", "-1"]),
    (["gui", "--scenario", "nope"], ["nope", "waves"]),
])
def test_bad_arguments_in_a_real_process(tmp_path, argv, words):
    """The console entry point itself: no traceback, exit 2, the argument named."""
    trace = write_trace(tmp_path / "t.jsonl")
    argv = [a.format(trace=trace, out=tmp_path / "o.npy") for a in argv]
    r = subprocess.run([sys.executable, "-m", "app", *argv], capture_output=True, text=True, timeout=60)
    assert_one_line_error(r.returncode, r.stderr, *words)


def test_help_of_every_command(capsys):
    for cmd in ("gui", "replay", "bench", "screenshot", "export-perfetto"):
        with pytest.raises(SystemExit) as info:
            cli_main([cmd, "--help"])
        assert info.value.code == 0
        assert f"bufferscope {cmd}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    assert "export-perfetto" in capsys.readouterr().out


# -- traces on the command line -------------------------------------------------------
def test_an_unclosed_json_line_names_its_own_line(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(HEADER) + '\n{"op": "set", "index": [0, 0], "value": 1\n{"op": "sync"}\n')
    rc, err = run_cli(["replay", str(path), "--out", str(tmp_path / "o.npy")], capsys)
    assert_one_line_error(rc, err, "line 2:", "end of the line")
    assert "column 1" not in err and "line 3" not in err


def test_a_header_too_large_for_memory_is_refused_naming_the_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sysmem, "available_memory", lambda: 4 << 30)
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({**HEADER, "shape": [50000, 50000]}) + '\n{"op": "sync"}\n')
    rc, err = run_cli(["replay", str(path), "--out", str(tmp_path / "o.npy")], capsys)
    assert_one_line_error(rc, err, "line 1:", "GiB", "available")
    assert leftovers(tmp_path, {"t.jsonl"}) == []


def test_a_trace_that_fits_is_not_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sysmem, "available_memory", lambda: 1 << 30)
    trace = write_trace(tmp_path / "t.jsonl")
    assert cli_main(["replay", str(trace), "--out", str(tmp_path / "o.npy")]) == 0
    assert np.load(tmp_path / "o.npy")[0].tolist() == [1.5, 1.5, 1.5]


def test_replay_streams_the_trace(tmp_path):
    """Replaying holds the current batch, not the trace: a 30 000-line trace's
    replay peaks well below what the parsed trace itself takes (~14 MB)."""
    import tracemalloc

    path = tmp_path / "big.jsonl"
    with open(path, "w") as fh:
        fh.write(json.dumps({**HEADER, "shape": [64, 64]}) + "\n")
        for k in range(30_000):
            fh.write(f'{{"op": "set", "index": [{k % 64}, {(k // 64) % 64}], "value": {k}, '
                     f'"seq": {k + 1}, "producer": "p{k % 3}"}}\n')
            if k % 5_000 == 4_999:
                fh.write('{"op": "sync"}\n')
    tracemalloc.start()
    try:
        assert cli_main(["replay", str(path), "--out", str(tmp_path / "o.npy")]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"replay peaked at {peak / 2**20:.1f} MiB"
    front = np.load(tmp_path / "o.npy")
    assert front[29_999 % 64, (29_999 // 64) % 64] == 29_999


def test_a_bad_line_late_in_a_streamed_trace_writes_nothing(tmp_path, capsys):
    lines = [{"op": "set", "index": [k % 4, 0], "value": k} for k in range(5000)]
    lines += [{"op": "sync"}, {"op": "fill", "region": [[0, 9], [0, 1]], "value": 1}]
    trace = write_trace(tmp_path / "t.jsonl", lines)
    rc, err = run_cli(["replay", str(trace), "--out", str(tmp_path / "o.npy")], capsys)
    assert_one_line_error(rc, err, "line 5003:", "beyond the size")
    assert leftovers(tmp_path, {"t.jsonl"}) == []


def test_set_many_of_nothing_is_a_no_op_on_every_shape():
    from conftest import require_backend

    from app import open_manager

    require_backend("c")
    from app.updates import validate_set_many

    for shape in ((5,), (4, 5), (2, 3, 4)):
        for idx in ([], np.empty((0,)), np.empty((0, len(shape)), dtype=np.int64)):
            i, v = validate_set_many(idx, [], shape)
            assert i.shape == (0, len(shape)) and v.shape == (0,)
        with open_manager("c", shape) as m:
            assert len(m.set_many([], [])) == 0
            assert m.synchronize(timeout=5) == 1
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        validate_set_many(np.empty((0, 3)), [], (4, 5))
