"""Every command of the CLI has help text and a row in README.md's command table.

The commands are found by walking the argparse tree that ``plantguard.cli.build_parser``
builds with the installed plugins (so plugin commands such as ``detect`` and ``train``
are walked too).  A command is documented when a code span of a row of README's
"Command line" table names it: `` `plantguard alarms list\\|ack` `` documents
``alarms list`` and ``alarms ack``; `` `plantguard trend POINT …` `` documents ``trend``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from plantguard.cli import build_parser, main
from plantguard.host import default_host

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """(command path, its one-line help, its parser) for every sub-command below ``parser``."""
    found: list[tuple[tuple[str, ...], str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            found.append(((*path, name), helps.get(name, ""), sub))
            found.extend(_walk(sub, (*path, name)))
    return found


COMMANDS = _walk(build_parser(default_host()), ())
GROUPS = {path[:-1] for path, _, _ in COMMANDS if len(path) > 1}


def documented_commands(text: str) -> set[tuple[str, ...]]:
    """The command paths the code spans of README's command table name."""
    section = ("\n" + text).split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    paths: set[tuple[str, ...]] = set()
    for row in section.splitlines():
        if not row.startswith("|"):
            continue
        first_cell = re.split(r"(?<!\\)\|", row)[1]
        for span in re.findall(r"`([^`]+)`", first_cell):
            words = span.replace("\\|", "|").split()
            if len(words) < 2 or words[0] != "plantguard":
                continue
            top = words[1]
            paths.add((top,))
            if len(words) > 2 and re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", words[2]):
                paths.update((top, sub) for sub in words[2].split("|"))
    return paths


def test_the_walk_finds_the_commands() -> None:
    paths = {path for path, _, _ in COMMANDS}
    for expected in [("run",), ("alarms", "list"), ("history", "export"), ("db", "init")]:
        assert expected in paths
    assert len(paths) >= 30


def test_the_table_parser_reads_alternatives_and_placeholders() -> None:
    text = (
        "## Command line\n\n| command | what |\n|---|---|\n"
        "| `plantguard alarms list\\|ack` | x |\n| `plantguard trend POINT [--csv]` | y |\n"
        "| `plantguard history export --points P` | z |\n\n## Next\n| `plantguard nope` | |\n"
    )
    assert documented_commands(text) == {
        ("alarms",),
        ("alarms", "list"),
        ("alarms", "ack"),
        ("trend",),
        ("history",),
        ("history", "export"),
    }


@pytest.mark.parametrize(
    ("path", "summary", "parser"), COMMANDS, ids=[" ".join(p) for p, _, _ in COMMANDS]
)
def test_command_has_help(
    path: tuple[str, ...],
    summary: str,
    parser: argparse.ArgumentParser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert summary.strip() or (parser.description or "").strip(), (
        f"`plantguard {' '.join(path)}` has neither help= nor a description"
    )
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: plantguard {' '.join(path)}")
    if path in GROUPS:  # a group's --help lists its sub-commands with their help
        for sub_path, sub_summary, _ in COMMANDS:
            if sub_path[:-1] == path:
                assert sub_path[-1] in out
                assert sub_summary.split()[0] in out


@pytest.mark.parametrize("path", [p for p, _, _ in COMMANDS if p not in GROUPS], ids=" ".join)
def test_command_is_in_the_readme_table(path: tuple[str, ...]) -> None:
    documented = documented_commands(README.read_text(encoding="utf-8"))
    assert path in documented, (
        f"`plantguard {' '.join(path)}` has no row in README.md's command table "
        f"(documented: {sorted(' '.join(p) for p in documented)})"
    )
