"""requirements.txt is generated from pyproject.toml and constraints.txt, and CI notices when it is stale."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "generate-requirements"


def check(root: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


def copy_of_the_repo(tmp_path: pathlib.Path) -> pathlib.Path:
    for name in ("pyproject.toml", "constraints.txt", "requirements.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_committed_requirements_file_is_fresh() -> None:
    result = check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_pins_every_runtime_dependency_and_installs_the_project_last() -> None:
    lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    pinned = {line.split("==")[0].split("[")[0].lower().replace("_", "-") for line in lines if "==" in line}
    assert {"fastapi", "uvicorn", "scikit-learn", "lightgbm", "pydantic-settings", "sqlalchemy"} <= pinned
    assert not {"pytest", "ruff", "mypy"} & pinned
    assert lines[-1] == "-e ."


def test_a_changed_pin_makes_it_stale(tmp_path: pathlib.Path) -> None:
    root = copy_of_the_repo(tmp_path)
    constraints = root / "constraints.txt"
    text = constraints.read_text()
    assert "\nfastapi==" in text
    constraints.write_text(text.replace("\nfastapi==", "\nfastapi==0.0.1+was-"))
    result = check(root)
    assert result.returncode == 1
    assert "requirements.txt is stale" in result.stderr
    assert "run scripts/generate-requirements" in result.stderr
    assert "+fastapi==0.0.1+was-" in result.stdout

    subprocess.run([sys.executable, str(SCRIPT), "--root", str(root)], check=True, capture_output=True)
    assert check(root).returncode == 0


def test_a_new_runtime_dependency_without_a_pin_is_refused(tmp_path: pathlib.Path) -> None:
    root = copy_of_the_repo(tmp_path)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('"pyarrow>=16",', '"pyarrow>=16",\n  "not-pinned>=1",'))
    result = check(root)
    assert result.returncode != 0
    assert "constraints.txt pins no version for not-pinned" in result.stderr
