"""The settings' variables as the docs name them, and how a default is written there: shared by the
checks of `.env.example` (test_operator_flow.py) and of `--help` and the README table
(test_configuration_docs.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from entrypoints.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def variable(name: str) -> str:
    """The environment variable a settings field reads (its first alias, else ML_WORKER_<NAME>)."""
    alias = Settings.model_fields[name].validation_alias
    return str(alias.choices[0]) if alias is not None else f"ML_WORKER_{name.upper()}"  # type: ignore[union-attr]


def shown(default: object) -> str:
    """A default as the docs write it ("" for none: the value is computed or the feature is off)."""
    if default is None:
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, dict):
        return json.dumps(default)
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def settings_defaults() -> dict[str, str]:
    """Every variable the settings read, with its default as shown."""
    return {variable(name): shown(field.default) for name, field in Settings.model_fields.items()}


def env_example() -> str:
    return (ROOT / ".env.example").read_text(encoding="utf-8")


def env_example_defaults() -> dict[str, str]:
    """`.env.example`'s `# NAME=default` lines."""
    return dict(re.findall(r"^# ([A-Z][A-Z0-9_]*)=(.*)$", env_example(), flags=re.MULTILINE))


def env_example_meanings() -> dict[str, str]:
    """The comment line above each `# NAME=default` (an `#   e.g. ...` line between is skipped)."""
    lines = env_example().splitlines()
    meanings = {}
    for index, line in enumerate(lines):
        found = re.match(r"^# ([A-Z][A-Z0-9_]*)=", line)
        if found:
            above = [text for text in lines[:index] if not text.startswith("#   ")][-1]
            meanings[found.group(1)] = above.removeprefix("# ")
    return meanings
