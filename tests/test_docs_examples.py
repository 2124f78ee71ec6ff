"""Every shell example of README.md and docs/*.md marked runnable runs, on a demo store.

A block is runnable when the line before its opening fence is the HTML comment
``<!-- runnable -->`` (invisible on GitHub), optionally with environment settings::

    <!-- runnable env: PLANTGUARD_PASSWORD=engineer PLANTGUARD_NEW_PASSWORD=s3cret -->
    ```sh
    plantguard users list --db plant.db
    ```

The convention is documented in docs/README.md.  Once per session the demo runs for
a few seconds on free ports into a temporary directory (``plantguard-demo.db`` and its
site file ``demo-site.yaml``); each block then runs in a fresh copy of that directory,
which also holds the same store as ``plant.db``, the site file as ``site.yaml`` and
``.venv`` (a link to this checkout's virtual environment), with ``.venv/bin`` first on
``PATH``.  Each command of a block (a line, with ``\\``-continuations joined; comment
lines skipped) runs with ``bash -o pipefail`` and a timeout, in order, in the block's
directory, and must exit 0.  The blocks run in parallel in a session fixture, so the
whole module takes about the demo's run plus the slowest block; each test reports one
block, named by file and line.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!--\s*runnable(?:\s+env:\s*(?P<env>.*?))?\s*-->\s*$")
FENCE = re.compile(r"^```(?:sh|bash|shell)\s*$")
#: Commands a runnable block may never contain: they start a gateway that keeps running.
LONG_RUNNING = re.compile(r"\bplantguard\s+(run\b|demo\b(?!.*--duration))|&\s*$|\bmake\s+demo\b")
DEMO_SECONDS = 8
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Block:
    file: Path
    line: int  # of the opening fence, 1-based
    env: dict[str, str]
    commands: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)


def _commands(lines: list[str]) -> tuple[str, ...]:
    commands: list[str] = []
    pending = ""
    for raw in lines:
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    if pending:
        commands.append(pending)
    return tuple(commands)


def _env(text: str | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in (text or "").split():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"runnable marker: expected NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def find_blocks(path: Path) -> list[Block]:
    """The runnable blocks of one Markdown file (markers inside other code blocks are text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    fence = ""  # the fence of the code block we are in, "" outside
    for i, line in enumerate(lines):
        stripped = line.strip()
        if fence:
            if stripped == fence:
                fence = ""
            continue
        opening = re.match(r"^(`{3,}|~{3,})", stripped)
        if opening:
            fence = opening.group(1)
            continue
        marker = MARKER.match(stripped)
        if marker is None:
            continue
        where = f"{path.relative_to(ROOT)}:{i + 1}"
        if i + 1 >= len(lines) or not FENCE.match(lines[i + 1].strip()):
            raise AssertionError(f"{where}: a runnable marker must be followed by ```sh")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise AssertionError(f"{where}: unclosed code block")
        blocks.append(Block(path, i + 2, _env(marker.group("env")), _commands(lines[i + 2 : end])))
    return blocks


BLOCKS = [block for path in DOC_FILES for block in find_blocks(path)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_block(block: Block, base: Path, workdir: Path) -> Outcome:
    shutil.copytree(base, workdir, symlinks=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "PLANTGUARD_PLUGINS"  # every installed plugin, whatever the shell says
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env.update(block.env)
    outcome = Outcome()
    for command in block.commands:
        try:
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            outcome.failures.append(f"{command}\n  timed out after {COMMAND_TIMEOUT:.0f} s")
            break
        if done.returncode != 0:
            outcome.failures.append(
                f"{command}\n  exit status {done.returncode}\n"
                f"  stdout: {done.stdout[-2000:]}\n  stderr: {done.stderr[-2000:]}"
            )
            break
    return outcome


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped demo: its store, its site file and their aliases, in a directory of its own."""
    base = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [
            str(VENV_BIN / "plantguard"),
            "demo",
            "--duration",
            str(DEMO_SECONDS),
            "--quiet",
            "--opcua-port",
            str(_free_port()),
            "--modbus-port",
            str(_free_port()),
            "--db",
            str(base / "plantguard-demo.db"),
            "--site-out",
            str(base / "demo-site.yaml"),
        ],
        cwd=base,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEMO_SECONDS + 60,
        check=False,
    )
    assert done.returncode == 0, f"the demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    shutil.copy(base / "plantguard-demo.db", base / "plant.db")
    shutil.copy(base / "demo-site.yaml", base / "site.yaml")
    (base / ".venv").symlink_to(VENV_BIN.parent, target_is_directory=True)
    return base


@pytest.fixture(scope="session")
def outcomes(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every runnable block, run in parallel, each in a copy of the demo directory."""
    root = tmp_path_factory.mktemp("blocks")
    workers = max(2, min(8, (os.cpu_count() or 2) * 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            block.id: pool.submit(_run_block, block, demo_dir, root / f"block{n}")
            for n, block in enumerate(BLOCKS)
        }
        return {block_id: future.result() for block_id, future in futures.items()}


def test_there_are_runnable_examples() -> None:
    files = {block.file for block in BLOCKS}
    assert len(BLOCKS) >= 15, [block.id for block in BLOCKS]
    assert ROOT / "README.md" in files
    assert len(files) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_runnable_block_starts_no_gateway(block: Block) -> None:
    for command in block.commands:
        assert not LONG_RUNNING.search(command), (
            f"{block.id}: a runnable block must not start a long-running gateway: {command}"
        )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_runnable_block_runs(block: Block, outcomes: dict[str, Outcome]) -> None:
    failures = outcomes[block.id].failures
    assert not failures, f"{block.id}: a command of this example failed:\n" + "\n".join(failures)
