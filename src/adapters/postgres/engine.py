"""From a DATABASE_URL as the platform sets it to what each driver takes: a libpq connection string
for the table source (ADBC), SQLAlchemy's asyncpg URL for the job store."""

from __future__ import annotations

import math

from sqlalchemy.engine import make_url

# Kept from the URL for libpq; anything else (Prisma's `schema`, `connection_limit`, `pgbouncer`...) is
# dropped, because libpq refuses the whole URL over an unknown parameter.
_LIBPQ_PARAMETERS = frozenset(
    {"host", "port", "sslmode", "sslrootcert", "sslcert", "sslkey", "application_name"}
)
# TCP keepalives: a read whose network went silent (and that the event loop already gave up on)
# ends after about idle + interval * count seconds instead of holding its thread forever.
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "15",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}


def libpq_conninfo(url: str, *, connect_timeout_s: float) -> str:
    """A DATABASE_URL as the platform sets it, as the libpq connection string ADBC takes.

    `postgresql://` and `postgres://` are both accepted; `sslmode`, `application_name` (default
    `ml-worker`), `host` and `port` are kept. `pgbouncer=true` needs nothing: the driver prepares
    only unnamed statements, inside the read's one transaction, which a transaction-mode pooler
    keeps on one server connection.
    """
    parsed = make_url(url)
    if parsed.drivername not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(f"the SQL data source needs a postgresql:// URL, not {parsed.drivername}://")
    params: dict[str, object] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
        "application_name": "ml-worker",
    }
    for key, raw in parsed.query.items():
        if key in _LIBPQ_PARAMETERS:
            params[key] = raw if isinstance(raw, str) else raw[-1]
    # libpq counts whole seconds and treats anything below 2 as 2.
    params["connect_timeout"] = max(2, math.ceil(connect_timeout_s))
    params.update(_KEEPALIVES)
    return " ".join(f"{key}={_conninfo_value(value)}" for key, value in params.items() if value is not None)


def _conninfo_value(value: object) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def schema_from_url(url: str) -> str | None:
    """The `schema` parameter Prisma-style URLs carry (`...?schema=app`), for `allowed_schemas`."""
    value = make_url(url).query.get("schema")
    if value is None:
        return None
    return value if isinstance(value, str) else value[-1]


def job_store_url(url: str) -> str:
    """The job store's URL: the same database under SQLAlchemy's asyncpg driver name."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"the PostgreSQL job store needs a postgresql:// URL, not {parsed.drivername}://")
    return parsed.render_as_string(hide_password=False)
