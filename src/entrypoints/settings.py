"""Configuration from the environment (see README, Configuration)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ML_WORKER_", extra="ignore", populate_by_name=True)

    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)
    api_key: str | None = None
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "ML_WORKER_DATABASE_URL")
    )
    database_schemas: str = "public"
    job_store: Literal["memory", "redis", "postgres"] = "memory"
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "ML_WORKER_REDIS_URL")
    )
    job_store_url: str | None = None
    cpu_limit: float | None = Field(None, gt=0)
    workers: int | None = Field(None, ge=1)
    threads_per_task: int | None = Field(None, ge=1)
    queue_limit: int = Field(16, ge=0)
    max_rows: int = Field(5_000_000, ge=1)
    max_body_mb: float = Field(512.0, gt=0)
    header_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(30.0, gt=0)
    body_min_kb_per_second: float = Field(64.0, ge=0)
    max_connections: int | None = Field(None, ge=1)
    job_result_ttl_seconds: float = Field(86_400.0, gt=0)
    job_failure_ttl_seconds: float = Field(604_800.0, gt=0)
    job_timeout_seconds: float = Field(3_600.0, gt=0)
    job_timeouts: dict[Literal["segmentation", "policy_analysis", "content_analysis"], float] = {}
    job_lease_seconds: float = Field(30.0, gt=1)
    train_timeout_seconds: float = Field(900.0, gt=0)
    statement_timeout_seconds: float = Field(120.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    compute: Literal["process", "inline"] = "process"

    @property
    def postgres_job_store_url(self) -> str | None:
        return self.job_store_url or self.database_url

    @property
    def allowed_schemas(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.database_schemas.split(",") if s.strip())


ENVIRONMENT_HELP = """\
environment variables:
  ML_WORKER_PORT                   listen port (8000)
  ML_WORKER_HOST                   listen address (0.0.0.0)
  ML_WORKER_API_KEY                shared secret required in X-Api-Key (unset: open)
  DATABASE_URL                     platform PostgreSQL for the `table` form of data (unset: inline only)
  ML_WORKER_DATABASE_SCHEMAS       schemas a schema-qualified table may name (public)
  ML_WORKER_JOB_STORE              memory | redis | postgres (memory: per process, one replica only)
  REDIS_URL                        Redis for the redis job store (redis://127.0.0.1:6379/0)
  ML_WORKER_JOB_STORE_URL          PostgreSQL for the postgres job store (default DATABASE_URL)
  ML_WORKER_CPU_LIMIT              CPUs to use (default: cgroup cpu.max, else the CPU count)
  ML_WORKER_WORKERS                compute processes (default: from the CPU budget)
  ML_WORKER_THREADS_PER_TASK       threads per computation (default: budget / workers)
  ML_WORKER_QUEUE_LIMIT            tasks waiting for a worker before 503 BUSY (16)
  ML_WORKER_MAX_ROWS               rows accepted per request (5000000)
  ML_WORKER_MAX_BODY_MB            request body limit in MB (512)
  ML_WORKER_HEADER_TIMEOUT_SECONDS request headers must arrive within this (10)
  ML_WORKER_BODY_TIMEOUT_SECONDS   longest pause in a request body, and its grace before the rate (30)
  ML_WORKER_BODY_MIN_KB_PER_SECOND slowest average body rate after the grace; 0: none (64)
  ML_WORKER_MAX_CONNECTIONS        open connections before 503 (10000, at most open files - 128)
  ML_WORKER_JOB_RESULT_TTL_SECONDS retention of completed and cancelled jobs (86400)
  ML_WORKER_JOB_FAILURE_TTL_SECONDS retention of failed jobs (604800)
  ML_WORKER_JOB_TIMEOUT_SECONDS    a job running longer fails with TIMEOUT (3600)
  ML_WORKER_JOB_TIMEOUTS           per job type, JSON, e.g. {"segmentation": 600} (default: the above)
  ML_WORKER_JOB_LEASE_SECONDS      a job not heartbeating this long fails with WORKER_LOST (30)
  ML_WORKER_TRAIN_TIMEOUT_SECONDS  limit of one /train/gbm call (900)
  ML_WORKER_STATEMENT_TIMEOUT_SECONDS  database statement timeout (120)
  ML_WORKER_LOG_LEVEL              debug | info | warning | error (info)
  ML_WORKER_LOG_FORMAT             auto (console on a TTY, else JSON) | json | console
"""
