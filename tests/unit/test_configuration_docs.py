"""The configuration as the docs tell it (issue 17, item 3): `ml-worker --help` and `serve --help`,
the README's Configuration table, `.env.example` and the offline commands' list name exactly the
variables the settings read (plus TMPDIR, which the standard library reads for us), with the
settings' own defaults; and the README names the contract's paths as the contract spells them."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import yaml

from adapters.compute.shared_frames import SharedFrames
from entrypoints.cli import main
from entrypoints.cli.commands import OFFLINE_ENVIRONMENT_HELP
from entrypoints.settings import ENVIRONMENT_HELP
from support.configuration import ROOT, env_example_meanings, settings_defaults

# Variables the docs list that are no setting, each with its default as the docs write it.
NOT_SETTINGS = {"TMPDIR": "/tmp"}
README = (ROOT / "README.md").read_text(encoding="utf-8")


def listed(help_text: str) -> dict[str, str]:
    """`  NAME   meaning` lines (a meaning may go on, indented, on the next lines) -> {NAME: meaning}."""
    meanings: dict[str, str] = {}
    name = None
    for line in help_text.splitlines():
        entry = re.match(r"^  ([A-Z][A-Z0-9_]*)\s+(\S.*)$", line)
        if entry:
            name = entry.group(1)
            meanings[name] = entry.group(2).strip()
        elif name is not None and re.match(r"^\s{20,}\S", line):
            meanings[name] += " " + line.strip()
        else:
            name = None
    return meanings


def readme_table() -> dict[str, tuple[str, str]]:
    section = README.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \| (.*?) \| (.*) \|$", section, flags=re.MULTILINE)
    return {name: (default, meaning) for name, default, meaning in rows}


def states_default(meaning: str, default: str) -> bool:
    """`(8000)`, `(2; +1 s ...)`, `(memory: ...)`, or the first of the choices listed (`auto | json`)."""
    escaped = re.escape(default)
    return bool(re.search(rf"\({escaped}[);,:]", meaning) or re.match(rf"{escaped} ", meaning))


def help_of(capsys: pytest.CaptureFixture[str], *arguments: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*arguments, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


EXPECTED = {**settings_defaults(), **NOT_SETTINGS}


@pytest.mark.parametrize("arguments", [(), ("serve",)], ids=["ml-worker", "serve"])
def test_help_lists_exactly_the_variables_with_their_defaults(
    capsys: pytest.CaptureFixture[str], arguments: tuple[str, ...]
) -> None:
    printed = help_of(capsys, *arguments).split("environment variables:\n", 1)[1]
    meanings = listed(printed)
    assert sorted(meanings) == sorted(EXPECTED)
    for name, default in EXPECTED.items():
        if default:
            assert states_default(meanings[name], default), f"{name}: {meanings[name]!r} lacks ({default})"


def test_the_readme_table_lists_exactly_the_variables_with_their_defaults() -> None:
    table = readme_table()
    assert sorted(table) == sorted(EXPECTED)
    for name, default in EXPECTED.items():
        if default:
            assert table[name][0] == f"`{default}`", name


def test_env_example_says_what_the_help_says() -> None:
    # .env.example's defaults are the settings' (test_operator_flow.py); here its words are --help's.
    meanings = listed(ENVIRONMENT_HELP)
    assert env_example_meanings() == {name: meanings[name] for name in settings_defaults()}


def test_the_offline_list_is_a_part_of_the_settings_with_their_defaults() -> None:
    offline = listed(OFFLINE_ENVIRONMENT_HELP)
    assert offline and set(offline) <= set(settings_defaults())
    for name, meaning in offline.items():
        default = EXPECTED[name]
        assert not default or states_default(meaning, default), f"{name}: {meaning!r} lacks ({default})"


def test_tmpdir_is_read_by_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Task data that finds no room in ML_WORKER_SHM_DIR goes to the temp dir, which is TMPDIR.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert SharedFrames(tmp_path / "shm").directories[-1] == tmp_path


def test_the_workers_default_is_told_alike_everywhere() -> None:
    # The memory section once said the pool defaults to the CPU limit; it is 1 below 4 CPUs.
    said = "1 below 4 CPUs, else CPUs / 2"
    assert readme_table()["ML_WORKER_WORKERS"][0] == said
    assert said in listed(ENVIRONMENT_HELP)["ML_WORKER_WORKERS"]
    assert "defaults to the CPU limit" not in README


def test_the_readme_spells_path_templates_as_the_contract() -> None:
    paths = set(yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))["paths"])
    templates = set(re.findall(r"(/[a-z/]+/\{[^}`]*\})", README))
    assert templates, "the README names no path template"
    assert templates <= paths
