"""The release archive HACS installs (``make ha-release``) and the HACS manifest."""

from __future__ import annotations

import json
from pathlib import Path
import zipfile

import release

ROOT = Path(__file__).parents[1]


def test_archive_holds_the_integration_at_its_root(tmp_path: Path) -> None:
    out = tmp_path / "dist" / "plantguard.zip"
    version = release.build(out)
    manifest = json.loads((release.COMPONENT / "manifest.json").read_text())
    assert version == manifest["version"]
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert json.loads(archive.read("manifest.json")) == manifest
    assert {"__init__.py", "manifest.json", "strings.json", "translations/zh-Hans.json"} <= set(
        names
    )
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert names == sorted(names)


def test_archive_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    release.build(first)
    release.build(second)
    assert first.read_bytes() == second.read_bytes()


def test_main_writes_the_named_file(tmp_path: Path, capsys) -> None:
    assert release.main([str(tmp_path / "p.zip")]) == 0
    assert "PlantGuard integration" in capsys.readouterr().out
    assert release.main([]) == 2


def test_hacs_manifest_names_the_release_archive() -> None:
    """HACS reads hacs.json at the root of the published repository (this folder)."""
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs["zip_release"] is True
    assert hacs["filename"] == "plantguard.zip"
    assert not hacs.get("content_in_root", False)  # custom_components/plantguard/ below it
    assert (ROOT / "custom_components" / "plantguard" / "manifest.json").is_file()
    assert (ROOT / "README.md").is_file()  # HACS shows it (render_readme)
    manifest = json.loads((release.COMPONENT / "manifest.json").read_text())
    assert manifest["codeowners"]
