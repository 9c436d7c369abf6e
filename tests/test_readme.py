"""The commands of the README and of the documentation (``docs/*.md``) are real: CI runs the
README's set-up and test commands, every script they name exists and accepts the flags they
give it, and the README's links lead to pages and headings that exist."""

from __future__ import annotations

import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

SHELL_FENCES = ("", "bash", "sh", "shell", "console")


def _commands(text: str) -> list[str]:
    """Shell commands of a Markdown page: lines of its shell code blocks (fenced, or indented by
    4 spaces outside fences) and inline `python ...` / `bash ...` spans."""
    code, prose, fence = [], [], None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = None if fence is not None else line.strip().strip("`").strip()
        elif fence is not None:
            if fence in SHELL_FENCES:
                code.append(line.strip())
        elif line.startswith("    "):
            code.append(line.strip())
        else:
            prose.append(line)
    inline = re.findall(r"`((?:python|bash) [^`]+)`", "\n".join(prose))
    commands = []
    for text_ in code + inline:
        for part in re.split(r"\s*(?:&&|;)\s*", text_.split("#")[0]):
            if part.startswith(("python", "bash", "pip", "cd ")):
                commands.append(part.strip())
    return commands


@pytest.fixture(scope="module")
def readme(repo_root) -> str:
    return (repo_root / "README.md").read_text()


@pytest.fixture(scope="module")
def pages(repo_root) -> dict[str, str]:
    """README.md and every page of docs/, by path."""
    paths = [repo_root / "README.md", *sorted((repo_root / "docs").glob("*.md"))]
    return {str(p.relative_to(repo_root)): p.read_text() for p in paths}


def test_ci_runs_the_readme_setup_and_test_commands(readme, repo_root):
    ci_lines = (repo_root / ".ci" / "run").read_text().splitlines()
    setup = next(line.strip() for line in readme.splitlines() if "pip install -r" in line)
    test = next(line.strip() for line in readme.splitlines()
                if line.strip().startswith("python3 -m pytest"))
    assert setup in ci_lines
    assert ci_lines[-1] == test


def test_every_script_the_docs_name_exists(pages, repo_root):
    missing = []
    for page, text in pages.items():
        scripts = {arg for command in _commands(text) for arg in shlex.split(command)
                   if arg.endswith((".py", ".sh")) and not arg.startswith("-")}
        missing += [f"{page}: {s}" for s in sorted(scripts) if not (repo_root / s).is_file()]
    assert len(pages) >= 10
    assert not missing


def _accepted_flags(words: list[str], repo_root: Path, capsys, monkeypatch) -> set[str]:
    """The flags that ``--help`` of ``python -m MODULE`` or ``python SCRIPT`` lists."""
    if words[1] == "-m":
        monkeypatch.delitem(sys.modules, words[2], raising=False)  # imported by a test
        namespace = runpy.run_module(words[2], run_name="readme_check", alter_sys=True)
    else:
        script = repo_root / words[1]
        monkeypatch.syspath_prepend(str(script.parent))  # as `python script.py` has it
        namespace = runpy.run_path(str(script), run_name="readme_check")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        namespace["main"](["--help"])
    assert exit_info.value.code == 0, " ".join(words)
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", capsys.readouterr().out))


def test_docs_flags_are_accepted_by_their_scripts(pages, repo_root, capsys, monkeypatch):
    """Each script's ``--help`` is read once; every flag written after it must be there."""
    monkeypatch.syspath_prepend(str(repo_root))  # as `python -m module` has it, from the root
    helps: dict[str, set[str]] = {}
    checked = 0
    for page, text in pages.items():
        for command in _commands(text):
            words = shlex.split(command)
            if words[0] not in ("python", "python3") or len(words) < 2:
                continue
            if words[1] == "-m" and words[2] != "pytest":
                target, flags = words[2], words[3:]
            elif words[1].endswith(".py"):
                target, flags = words[1], words[2:]
            else:
                continue
            if target not in helps:
                helps[target] = _accepted_flags(words, repo_root, capsys, monkeypatch)
            for flag in (w.split("=")[0] for w in flags if w.startswith("--")):
                assert flag in helps[target], f"{page}: {target} does not take {flag}"
            checked += 1
    assert checked >= 30 and len(helps) >= 14


def _slug(heading: str) -> str:
    """The anchor of a Markdown heading, as mkdocs (Python-Markdown's toc) and GitHub make it."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[\s]+", "-", text).strip("-")


def test_readme_links_lead_to_existing_pages_and_headings(readme, repo_root):
    links = re.findall(r"\]\(([^)\s]+)\)", readme) + re.findall(r'src="([^"]+)"', readme)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 20
    for link in local:
        path, _, anchor = link.partition("#")
        target = repo_root / path if path else repo_root / "README.md"
        assert target.is_file(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), re.MULTILINE)
            assert anchor in {_slug(h) for h in headings}, link
