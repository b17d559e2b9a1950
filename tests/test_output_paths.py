"""Every path a command writes is checked before any work (issue 25: `parity --junit DIR` raised
IsADirectoryError after the whole run): a folder where a file is wanted, a file where a folder
is, a parent that cannot be made, a read-only place or file, a link, a device or a pipe give one
line and exit 2, and what was there is left as it was. Each command is given an input that
would fail later (a missing model file): the error is the output's, so nothing ran."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.cli.main import main

MISSING = "missing-model.onnx"

# (command up to the flag, the flag); "{tmp}" is the test's folder.
FILE_FLAGS = [
    (["parity", "--model", MISSING], "--json"),
    (["parity", "--model", MISSING], "--junit"),
    (["bench", "--model", MISSING], "--out"),
    (["compare", MISSING, MISSING], "--json"),
    (["parallel-in-time", "--model", MISSING], "--json"),
    (["error-growth", "--cells", "nope"], "--json"),
    (["selfcheck", "--runs", "1"], "--json"),
    (["report", MISSING, "--out", "{tmp}/report"], "--readme"),
    (["schema", "--out", "{tmp}/schema"], "--readme"),
]
FOLDER_FLAGS = [
    (["parity", "--model", MISSING], "--report", "parity.md"),
    (["report", MISSING], "--out", "report.html"),
    (["export", "--model", MISSING], "--out", "audit.json"),
    (["schema"], "--out", "parity.schema.json"),
]


def _bad_file(kind: str, tmp) -> tuple[str, str]:
    """(a path no file may be written to, words of the refusal)."""
    path = tmp / "out.json"
    if kind == "folder":
        path.mkdir()
        return str(path), "it is a folder"
    if kind == "under a file":
        (tmp / "a-file").write_text("kept")
        return str(tmp / "a-file" / "out.json"), "a-file is not a folder"
    if kind == "read-only place":  # refused even to root
        return "/proc/rnnbench-x/out.json", "no file can be made in /proc"
    if kind == "read-only file":
        path.write_text("kept")
        path.chmod(0o444)
        return str(path), "it is read-only"
    if kind == "link":
        (tmp / "backend.json").write_text("kept")
        path.symlink_to(tmp / "backend.json")
    elif kind == "pipe":
        os.mkfifo(path)
    else:
        return "/dev/null", "a link, a device or a pipe"
    return str(path), "a link, a device or a pipe"


def _bad_folder(kind: str, tmp) -> tuple[str, str]:
    path = tmp / "out"
    if kind == "file":
        path.write_text("kept")
        return str(path), "it is not a folder"
    if kind == "under a file":
        (tmp / "a-file").write_text("kept")
        return str(tmp / "a-file" / "out"), "a-file is not a folder"
    if kind == "read-only place":
        return "/proc/rnnbench-x", "no file can be made in /proc"
    if kind == "pipe":
        os.mkfifo(path)
        return str(path), "it is not a folder"
    return "/dev/null", "it is not a folder"


def _run(argv: list[str], tmp, capsys) -> tuple[int, str, str]:
    code = main([a.replace("{tmp}", str(tmp)) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _refused(code, out, err, flag, path, words):
    assert code == 2, err
    assert out == "" and err.count("\n") == 1, err  # one line, and nothing ran before it
    assert err.startswith(f"rnnbench: error: cannot write {flag} {path}"), err
    assert words in err and MISSING not in err.split(path)[-1], err


@pytest.mark.parametrize(
    "kind",
    ["folder", "under a file", "read-only place", "read-only file", "link", "pipe", "device"],
)
@pytest.mark.parametrize("command,flag", FILE_FLAGS, ids=lambda v: " ".join(v)[:20])
def test_a_file_flag_is_refused_before_any_work(command, flag, kind, tmp_path, capsys):
    path, words = _bad_file(kind, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = _run([*command, flag, path], tmp_path, capsys)
    _refused(code, out, err, flag, path, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made, nothing lost
    if kind in ("read-only file", "link"):
        assert Path(path).read_text() == "kept"


@pytest.mark.parametrize("kind", ["file", "under a file", "read-only place", "pipe", "device"])
@pytest.mark.parametrize("command,flag,inner", FOLDER_FLAGS, ids=lambda v: " ".join(v)[:20])
def test_a_folder_flag_is_refused_before_any_work(command, flag, inner, kind, tmp_path, capsys):
    path, words = _bad_folder(kind, tmp_path)
    code, out, err = _run([*command, flag, path], tmp_path, capsys)
    _refused(code, out, err, flag, path, words)
    assert kind != "file" or Path(path).read_text() == "kept"


@pytest.mark.parametrize("command,flag,inner", FOLDER_FLAGS, ids=lambda v: " ".join(v)[:20])
def test_a_folder_whose_file_would_replace_a_folder_is_refused(
    command, flag, inner, tmp_path, capsys
):
    (tmp_path / "out" / inner).mkdir(parents=True)
    code, out, err = _run([*command, flag, str(tmp_path / "out")], tmp_path, capsys)
    _refused(code, out, err, flag, str(tmp_path / "out" / inner), "it is a folder")


@pytest.mark.parametrize(
    "argv,words",
    [
        (["parity", "--model", MISSING, "--json", "{tmp}/new/r.json"], "no such file"),
        (["parity", "--model", MISSING, "--report", "{tmp}/new/d"], "no such file"),
        (["bench", "--model", MISSING, "--out", "{tmp}/new/r.json"], "no such file"),
        (["report", MISSING, "--out", "{tmp}/new"], "cannot read results file"),
        (["selfcheck", "--runs", "1", "--json", "{tmp}/new/r.json"], "allowed 2 or more"),
        (["error-growth", "--cells", "nope", "--json", "{tmp}/r.json"], "unknown cell"),
    ],
)
def test_a_path_that_can_be_written_goes_on_to_the_work(argv, words, tmp_path, capsys):
    """The premise of the tests above: with a fine output path, the command gets as far as its
    input (which fails), and the check made no folder on its way."""
    code, _, err = _run(argv, tmp_path, capsys)
    assert code == 2 and words in err and "cannot write" not in err, err
    assert not (tmp_path / "new").exists()
