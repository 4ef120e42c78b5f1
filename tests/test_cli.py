import subprocess
import sys

from collector.cli import build_parser, main


def test_help_lists_every_subcommand():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices, "no subcommands registered"
    for name, subparser in sub.choices.items():
        assert subparser.format_help().strip(), name


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: collector" in capsys.readouterr().out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "collector", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "COMMAND" in out.stdout


def test_command_with_missing_dependency_is_reported_not_fatal(tmp_path, monkeypatch, capsys):
    import collector.commands

    broken = tmp_path / "zz_broken.py"
    broken.write_text("import module_that_does_not_exist_here\n")
    monkeypatch.setattr(collector.commands, "__path__", [*collector.commands.__path__, str(tmp_path)])
    assert main(["zz_broken"]) == 2
    err = capsys.readouterr().err
    assert "module_that_does_not_exist_here" in err and "cannot run here" in err
