"""The platform's documented operator flow: `.env` for local development, `.env.example` naming every
variable with its default, and a training deadline below the platform's 300 s request timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

from entrypoints.settings import Settings
from support.configuration import ROOT, env_example_defaults, settings_defaults

PLATFORM_REQUEST_TIMEOUT_SECONDS = 300  # the platform's ML_WORKER_TIMEOUT_MS default, 300,000 ms


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgresql://platform@db:5432/platform\nML_WORKER_PORT=9123\nML_WORKER_JOB_STORE=redis\n"
    )
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "ML_WORKER_DATABASE_URL", "ML_WORKER_PORT", "ML_WORKER_JOB_STORE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == "postgresql://platform@db:5432/platform"
    assert settings.port == 9123
    assert settings.job_store == "redis"


def test_the_real_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("ML_WORKER_PORT=9123\nML_WORKER_LOG_LEVEL=debug\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ML_WORKER_PORT", "9200")
    monkeypatch.delenv("ML_WORKER_LOG_LEVEL", raising=False)
    settings = Settings()
    assert settings.port == 9200
    assert settings.log_level == "debug"


def test_without_dotenv_the_defaults_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ML_WORKER_PORT", raising=False)
    assert Settings().port == 8000


def test_env_example_lists_every_variable_with_its_default() -> None:
    assert env_example_defaults() == settings_defaults()


def test_env_example_as_a_dotenv_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Copied to .env unchanged, it must start the same service as no file at all.
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    with_example = Settings()
    (tmp_path / ".env").unlink()
    assert with_example == Settings()


def test_the_training_deadline_ends_before_the_platform_gives_up() -> None:
    default = Settings.model_fields["train_timeout_seconds"].default
    assert default == 280
    assert default < PLATFORM_REQUEST_TIMEOUT_SECONDS
