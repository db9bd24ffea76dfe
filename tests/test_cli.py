"""The `halleval` console script: --help on every command, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.cli import build_parser, main

HALLEVAL = str(Path(sys.executable).parent / "halleval")


def _commands(parser) -> list[list[str]]:
    """Every command path, e.g. ['run'], ['score', 'chair'], found by walking sub-parsers."""
    paths = []
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            paths.append([name])
            paths += [[name, *rest] for rest in _commands(sub)]
    return paths


COMMANDS = _commands(build_parser())


def test_the_main_commands_exist():
    names = {path[0] for path in COMMANDS}
    assert {"run", "demo", "report", "score", "data"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    assert "usage: halleval" in capsys.readouterr().out


def test_console_script_is_installed():
    result = subprocess.run([HALLEVAL, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "demo" in result.stdout


def test_missing_config_is_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = subprocess.run([HALLEVAL, "run", str(missing)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"halleval run: error: config file {missing} does not exist; see configs/ for examples"
    ]


def test_config_typo_is_one_line_naming_the_key(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text("benchmark: {name: chair, root: x}\nmethod: {name: greedy, temprature: 0.7}\n")
    assert main(["run", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "unknown key 'method.temprature'" in error and str(config) in error


def test_unknown_judge_fails_before_any_generation(tmp_path, capsys):
    config = tmp_path / "judge.yaml"
    config.write_text(
        f"benchmark: {{name: chair, root: {tmp_path / 'no-coco'}}}\n"
        f"scoring: {{judge: 'opneai:gpt-4'}}\noutput_dir: {tmp_path / 'runs'}\n"
    )
    assert main(["run", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "halleval run: error: unknown judge 'opneai'; did you mean 'openai'?"
    assert not (tmp_path / "runs").exists()  # stopped before the run folder or Ray
