"""Typing: the seams every component stands on pass `mypy --strict`.

The contract lives in pyproject.toml ([tool.mypy]): `files` names the
strictly typed packages (storage, client, the API server's registry,
runtime, controllers and the apimachinery they all import), `strict = true`
holds for them, and the rest of megaplane is followed for its types without
its own errors being reported. This test runs that configuration with the
venv's mypy, a cold cache in a temporary directory so a stale cache can
neither hide nor invent an error, and fails with mypy's report.

Two guards keep the contract from eroding quietly: the configured files
still cover every seam package, and a `# type: ignore` in them is only for a
third-party library without stubs (a missing import), with its error code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Dict, Iterator, List

ROOT = Path(__file__).resolve().parent.parent
MYPY = Path(sys.executable).parent / "mypy"
STRICT_PATHS = [
    "megaplane/storage",
    "megaplane/client",
    "megaplane/apiserver/registry",
    "megaplane/apiserver/audit",
    "megaplane/runtime.py",
    "megaplane/controllers",
    "megaplane/apimachinery",
    "megaplane/scheduler",
    "megaplane/serving.py",
    "megaplane/bench",
]
# The codes mypy gives an import it cannot type: a library that ships no stubs and no py.typed.
_UNTYPED_IMPORT_CODES = {"import-untyped", "import-not-found"}
_IGNORE = re.compile(r"#\s*type:\s*ignore(?:\[(?P<codes>[^\]]*)\])?")


def _mypy_config() -> Dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        config: Dict[str, Any] = tomllib.load(f)["tool"]["mypy"]
    return config


def _strict_files() -> Iterator[Path]:
    for path in STRICT_PATHS:
        p = ROOT / path
        yield from sorted(p.rglob("*.py")) if p.is_dir() else [p]


def test_seams_pass_mypy_strict(tmp_path: Path) -> None:
    assert MYPY.exists(), f"mypy is not installed next to {sys.executable}"
    r = subprocess.run(
        [str(MYPY), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MYPY_FORCE_COLOR": "0"},
    )
    assert r.returncode == 0, f"mypy --strict reports errors in the typed seams:\n{r.stdout}\n{r.stderr}"
    # A configuration that checks nothing also succeeds: make sure it checked the seams.
    checked = re.search(r"no issues found in (\d+) source files", r.stdout)
    assert checked, r.stdout
    assert int(checked.group(1)) == len(list(_strict_files())), r.stdout


def test_config_covers_every_seam() -> None:
    config = _mypy_config()
    assert config.get("strict") is True
    assert sorted(config.get("files", [])) == sorted(STRICT_PATHS)


def test_type_ignores_only_for_untyped_libraries() -> None:
    offenders: List[str] = []
    for path in _strict_files():
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            m = _IGNORE.search(line)
            if m is None:
                continue
            codes = {c.strip() for c in (m.group("codes") or "").split(",") if c.strip()}
            if not codes or not codes <= _UNTYPED_IMPORT_CODES:
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "type: ignore outside a third-party import without stubs:\n" + "\n".join(offenders)
