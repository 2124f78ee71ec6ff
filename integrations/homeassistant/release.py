"""Build the release archive HACS installs: ``plantguard.zip`` (``make ha-release``).

HACS (``hacs.json``: ``zip_release: true``, ``filename: plantguard.zip``) downloads
this file from a GitHub release and unpacks it into
``<config>/custom_components/plantguard/``, so the integration's files sit at the
archive's root.  The same archive installs by hand: unzip it into that folder.

The archive is reproducible: files in sorted order, each with the same fixed
time, no byte-code caches — the same sources always give the same bytes.

Usage: ``python release.py OUT.zip``.
"""

from __future__ import annotations

import json
from pathlib import Path
import sys
import zipfile

COMPONENT = Path(__file__).resolve().parent / "custom_components" / "plantguard"

#: 1980-01-01, the earliest time a zip entry can carry.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def release_files(component: Path = COMPONENT) -> list[Path]:
    """The integration's files, without byte-code caches, in a stable order."""
    return sorted(
        path
        for path in component.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def build(out: Path, component: Path = COMPONENT) -> str:
    """Write the archive to ``out``; return the integration's version (from its manifest)."""
    manifest = json.loads((component / "manifest.json").read_text(encoding="utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in release_files(component):
            entry = zipfile.ZipInfo(path.relative_to(component).as_posix(), _FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, path.read_bytes())
    return str(manifest["version"])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    version = build(out)
    print(f"{out}: PlantGuard integration {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
