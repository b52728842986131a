"""Configuration from the environment (see README, Configuration)."""

from __future__ import annotations

import re
import sys
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError


class Settings(BaseSettings):
    # `.env` in the working directory, as the platform's page tells operators to use for local
    # development; a variable set in the real environment wins over the file.
    model_config = SettingsConfigDict(
        env_prefix="ML_WORKER_",
        extra="ignore",
        populate_by_name=True,
        env_file=".env",
        env_file_encoding="utf-8",
    )

    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)
    api_key: str | None = None
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "ML_WORKER_DATABASE_URL")
    )
    database_schemas: str = "public"
    # Only these tables are readable (re.search on the table name): the platform's dataset tables.
    table_pattern: str = "^ds_"
    require_tenant_filter: bool = True
    job_store: Literal["memory", "redis", "postgres"] = "memory"
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "ML_WORKER_REDIS_URL")
    )
    job_store_url: str | None = None
    # Where the job store keeps its data, so that deployments (or test runs) can share a server.
    redis_key_prefix: str = "mlworker:"
    job_store_table: str = Field(
        "ml_worker_jobs", pattern=r"^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$"
    )
    cpu_limit: float | None = Field(None, gt=0)
    workers: int | None = Field(None, ge=1)
    threads_per_task: int | None = Field(None, ge=1)
    queue_limit: int = Field(16, ge=0)
    max_rows: int = Field(5_000_000, ge=1)
    max_body_mb: float = Field(512.0, gt=0)
    # The replica's memory; default: the cgroup's limit, else half the RAM (memory_budget.py).
    memory_limit_mb: float | None = Field(None, gt=0)
    max_model_mb: float = Field(50.0, gt=0)
    header_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(30.0, gt=0)
    body_min_kb_per_second: float = Field(64.0, ge=0)
    max_connections: int | None = Field(None, ge=1)
    job_result_ttl_seconds: float = Field(86_400.0, gt=0)
    job_failure_ttl_seconds: float = Field(604_800.0, gt=0)
    job_timeout_seconds: float = Field(3_600.0, gt=0)
    job_timeouts: dict[
        Literal["segmentation", "policy_analysis", "content_analysis", "drift_analysis", "gbm_training"],
        float,
    ] = {}
    job_lease_seconds: float = Field(30.0, gt=1)
    # The job queue every replica sharing the store claims from.
    max_queued_jobs: int = Field(1_000, ge=1)
    max_queued_mb: float = Field(2_048.0, gt=0)
    job_payload_inline_mb: float = Field(8.0, ge=0)
    job_payload_dir: str | None = None
    job_max_attempts: int = Field(2, ge=1)
    max_running_per_tenant: int | None = Field(None, ge=1)
    train_queue_wait_seconds: float = Field(30.0, ge=0)
    store_timeout_seconds: float = Field(2.0, gt=0)
    unwritten_results: int = Field(64, ge=0)
    # Below the platform's 300 s request timeout (its ML_WORKER_TIMEOUT_MS), counted from the
    # request's arrival: a training the platform gave up on must not go on holding a compute slot.
    train_timeout_seconds: float = Field(280.0, gt=0)
    statement_timeout_seconds: float = Field(120.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    compute: Literal["process", "inline"] = "process"
    # The Dask backend for large tables (README, "Past one machine: Dask"); unset: everything local.
    dask_scheduler: str | None = None
    dask_min_rows: int = Field(2_000_000, ge=1)
    dask_max_rows: int = Field(200_000_000, ge=1)
    dask_lightgbm_port: int | None = Field(None, ge=1, le=65535)
    shm_dir: str | None = None

    @field_validator("api_key")
    @classmethod
    def _key_is_a_secret(cls, key: str | None) -> str | None:
        # Set but empty used to mean "no auth": a secret that failed to render must not open the API.
        if key is not None and not key.strip():
            raise ValueError("is set but empty: unset it to run without a key, or set a key")
        if key is not None and key != key.strip():
            # HTTP strips the header value, so a key with surrounding spaces could never match.
            raise ValueError("has leading or trailing whitespace (a newline from a secret file?)")
        return key

    @field_validator("dask_scheduler")
    @classmethod
    def _blank_scheduler_is_unset(cls, address: str | None) -> str | None:
        # Compose passes an unset variable through as empty: that means no cluster, as unset does.
        return address.strip() or None if address is not None else None

    @field_validator("table_pattern")
    @classmethod
    def _pattern_compiles(cls, pattern: str) -> str:
        if not pattern:
            # It would match every table; allowing all must be said (`.*`), not left unrendered.
            raise ValueError("is empty: it would make every table readable (write .* to mean that)")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from None
        return pattern

    @property
    def postgres_job_store_url(self) -> str | None:
        return self.job_store_url or self.database_url

    @property
    def allowed_schemas(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.database_schemas.split(",") if s.strip())


def settings_from_env() -> Settings:
    """The settings, or the process ends with one line naming what is wrong (no traceback): a
    misconfigured replica must refuse to start rather than run open or half-configured."""
    try:
        return Settings()
    except (ValidationError, SettingsError) as error:
        line = (
            settings_error(error) if isinstance(error, ValidationError) else f"invalid configuration: {error}"
        )
        print(f"error: {' '.join(line.split())}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def settings_error(error: ValidationError) -> str:
    """A ValidationError of the settings as one line naming the variables, for a refused start."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        name = str(item["loc"][0]) if item["loc"] else "settings"
        variable = name if name.isupper() else f"ML_WORKER_{name.upper()}"
        if item["type"] == "value_error":  # ours, worded to follow the variable's name
            problems.append(f"{variable} {item['msg'].removeprefix('Value error, ')}")
        else:
            problems.append(f"{variable}: {item['msg']}")
    return "invalid configuration: " + "; ".join(problems)


# `ml-worker --help` and `serve --help`: every variable the settings read, with its default, and
# TMPDIR (read by the standard library's tempfile). tests/unit/test_configuration_docs.py holds it,
# the README's Configuration table and .env.example to the fields above.
ENVIRONMENT_HELP = """\
environment variables:
  ML_WORKER_PORT                   listen port (8000)
  ML_WORKER_HOST                   listen address (0.0.0.0)
  ML_WORKER_API_KEY                shared secret required in X-Api-Key (unset: open; empty: refused)
  DATABASE_URL                     platform PostgreSQL for the `table` form of data (unset: inline only)
  ML_WORKER_DATABASE_SCHEMAS       schemas a schema-qualified table may name (public)
  ML_WORKER_TABLE_PATTERN          regular expression a readable table's name matches (^ds_)
  ML_WORKER_REQUIRE_TENANT_FILTER  a table with a tenantId column needs a tenantId filter (true)
  ML_WORKER_JOB_STORE              memory | redis | postgres (memory: per process, one replica only)
  REDIS_URL                        Redis for the redis job store (redis://127.0.0.1:6379/0)
  ML_WORKER_JOB_STORE_URL          PostgreSQL for the postgres job store (default DATABASE_URL)
  ML_WORKER_JOB_STORE_TABLE        its table, [schema.]name (ml_worker_jobs, in public)
  ML_WORKER_REDIS_KEY_PREFIX       prefix of the redis job store's keys (mlworker:)
  ML_WORKER_CPU_LIMIT              CPUs to use (default: cgroup cpu.max, else the CPU count)
  ML_WORKER_WORKERS                compute processes (default: 1 below 4 CPUs, else CPUs / 2)
  ML_WORKER_THREADS_PER_TASK       threads per computation at most (default: budget / workers)
  ML_WORKER_QUEUE_LIMIT            trainings waiting for a compute slot before 503 BUSY (16)
  ML_WORKER_MAX_ROWS               rows accepted per request (5000000)
  ML_WORKER_MAX_BODY_MB            request body limit in MB (512)
  ML_WORKER_MEMORY_LIMIT_MB        memory split among compute processes (cgroup memory.max, else RAM/2)
  ML_WORKER_MAX_MODEL_MB           largest modelState JSON a training may answer (50)
  ML_WORKER_HEADER_TIMEOUT_SECONDS request headers must arrive within this (10)
  ML_WORKER_BODY_TIMEOUT_SECONDS   longest pause in a request body, and its grace before the rate (30)
  ML_WORKER_BODY_MIN_KB_PER_SECOND slowest average body rate after the grace; 0: none (64)
  ML_WORKER_MAX_CONNECTIONS        open connections before 503 (10000, at most open files - 128)
  ML_WORKER_JOB_RESULT_TTL_SECONDS retention of completed and cancelled jobs (86400)
  ML_WORKER_JOB_FAILURE_TTL_SECONDS retention of failed jobs (604800)
  ML_WORKER_JOB_TIMEOUT_SECONDS    a job running longer fails with TIMEOUT (3600)
  ML_WORKER_JOB_TIMEOUTS           per job type, JSON, e.g. {"segmentation": 600} ({}: the above for all)
  ML_WORKER_JOB_LEASE_SECONDS      a job not heartbeating this long runs again elsewhere (30)
  ML_WORKER_MAX_QUEUED_JOBS        queued jobs per job store before 503 BUSY (1000)
  ML_WORKER_MAX_QUEUED_MB          input held for active jobs per job store before 503 BUSY (2048)
  ML_WORKER_JOB_PAYLOAD_INLINE_MB  a job's input larger than this goes to the payload dir (8)
  ML_WORKER_JOB_PAYLOAD_DIR        a directory every replica mounts, for large job inputs (unset:
                                   every input in the job store)
  ML_WORKER_JOB_MAX_ATTEMPTS       runs of a job whose replica died, before WORKER_LOST (2)
  ML_WORKER_MAX_RUNNING_PER_TENANT running jobs of one tenantId per job store (half the compute
                                   slots of a replica, at least 1)
  ML_WORKER_TRAIN_QUEUE_WAIT_SECONDS  a /train/gbm call waits this long for a slot before 503 (30)
  ML_WORKER_STORE_TIMEOUT_SECONDS  connect and command timeout of job store calls (2; +1 s per 10 MB)
  ML_WORKER_UNWRITTEN_RESULTS      finished results held while the job store is unreachable (64)
  ML_WORKER_TRAIN_TIMEOUT_SECONDS  limit of one /train/gbm call, from its arrival (280)
  ML_WORKER_STATEMENT_TIMEOUT_SECONDS  database statement timeout (120)
  ML_WORKER_LOG_LEVEL              debug | info | warning | error (info)
  ML_WORKER_LOG_FORMAT             auto (console on a TTY, else JSON) | json | console
  ML_WORKER_COMPUTE                process (a pool of compute processes) | inline (in the server
                                   process; tests and debugging)
  ML_WORKER_DASK_SCHEDULER         Dask scheduler for large tables, e.g. tcp://dask:8786 (unset: all local)
  ML_WORKER_DASK_MIN_ROWS          a table with this many matching rows trains on Dask (2000000)
  ML_WORKER_DASK_MAX_ROWS          rows a request may read on Dask (200000000)
  ML_WORKER_DASK_LIGHTGBM_PORT     the port LightGBM's Dask workers listen on between themselves (unset:
                                   a free port each, chosen at every training)
  ML_WORKER_SHM_DIR                where task data goes to the compute processes (/dev/shm; the
                                   temp dir when it has no room)
  TMPDIR                           the temp dir: temporary files, and task data ML_WORKER_SHM_DIR
                                   has no room for (/tmp)
"""
