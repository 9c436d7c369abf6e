"""The README's commands are real: CI runs its set-up and test commands, and every script it
names exists and accepts the flags the README gives it."""

from __future__ import annotations

import re
import runpy
import shlex
import sys

import pytest


def _commands(readme: str) -> list[str]:
    """Shell commands of the README: indented code lines and inline `python ...` spans."""
    lines = [line.strip() for line in readme.splitlines() if line.startswith("    ")]
    inline = re.findall(r"`((?:python|bash) [^`]+)`", readme)
    commands = []
    for text in lines + inline:
        for part in re.split(r"\s*(?:&&|;)\s*", text.split("#")[0]):
            if part.startswith(("python", "bash", "pip", "cd ")):
                commands.append(part.strip())
    return commands


@pytest.fixture(scope="module")
def readme(repo_root) -> str:
    return (repo_root / "README.md").read_text()


def test_ci_runs_the_readme_setup_and_test_commands(readme, repo_root):
    ci_lines = (repo_root / ".ci" / "run").read_text().splitlines()
    setup = next(line.strip() for line in readme.splitlines() if "pip install -r" in line)
    test = next(line.strip() for line in readme.splitlines()
                if line.strip().startswith("python3 -m pytest"))
    assert setup in ci_lines
    assert ci_lines[-1] == test


def test_every_script_the_readme_names_exists(readme, repo_root):
    scripts = {arg for command in _commands(readme) for arg in shlex.split(command)
               if arg.endswith((".py", ".sh")) and not arg.startswith("-")}
    assert len(scripts) >= 10
    missing = sorted(s for s in scripts if not (repo_root / s).is_file())
    assert not missing


def test_readme_flags_are_accepted_by_their_scripts(readme, repo_root, capsys, monkeypatch):
    checked = 0
    monkeypatch.syspath_prepend(str(repo_root))  # as `python -m module` has it, from the root
    for command in _commands(readme):
        words = shlex.split(command)
        if words[0] not in ("python", "python3"):
            continue
        if words[1] == "-m" and words[2] != "pytest":
            monkeypatch.delitem(sys.modules, words[2], raising=False)  # imported by a test
            namespace = runpy.run_module(words[2], run_name="readme_check", alter_sys=True)
            words = words[1:]
        elif words[1].endswith(".py"):
            script = repo_root / words[1]
            monkeypatch.syspath_prepend(str(script.parent))  # as `python script.py` has it
            namespace = runpy.run_path(str(script), run_name="readme_check")
        else:
            continue
        with pytest.raises(SystemExit) as exit_info:
            namespace["main"](["--help"])
        assert exit_info.value.code == 0, command
        accepted = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", capsys.readouterr().out))
        for flag in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert flag in accepted, f"{words[1]} does not take {flag}"
        checked += 1
    assert checked >= 14
