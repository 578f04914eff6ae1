"""The command line itself: every command is listed, and commands that cannot start say why in one line."""

from __future__ import annotations

from pipelines.cli import main
from pipelines.commands import COMMANDS


def test_help_lists_every_command(capsys):
    assert main([]) == 2
    shown = capsys.readouterr().out
    assert all(name in shown for name in COMMANDS)


def test_demo_without_pages_names_the_cause_and_the_fix(tmp_path, capsys):
    assert main(["demo", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "tests/data" in err and "--data" in err and "not shipped in the wheel" in err


def test_bad_names_are_refused_before_any_work(tmp_path, capsys):
    warc = tmp_path / "x.warc.gz"
    warc.write_bytes(b"")
    assert main(["extract", str(warc), "--out", str(tmp_path / "out"), "--dump", "../escape"]) == 2
    assert "bad --dump" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists() and not (tmp_path / "out").exists()
