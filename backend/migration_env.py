"""What both Alembic environments share (migrations_core/env.py, migrations_ai/env.py).

The target database URL is read from an environment variable (never from the .ini file).
Accepted schemes:

    postgresql://  postgres://  postgresql+asyncpg://  postgresql+psycopg://
    (also postgresql+psycopg2://)

All of them are normalised to ``postgresql+psycopg://`` (psycopg 3, sync).
The password may be percent-encoded (``%40`` for ``@``, ``%25`` for ``%`` ...);
SQLAlchemy's URL parser decodes it. The URL is deliberately NOT passed through
``config.set_main_option`` because configparser would try to interpolate the
``%`` signs. Query parameters (``sslmode=require`` ...) are kept. The URL and
password are never printed.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool

# Each database has its own Alembic history and its own version table
# (separate databases, so the default name is used in both).
VERSION_TABLE = "alembic_version"
TARGET_DRIVER = "postgresql+psycopg"
ACCEPTED_DRIVERS = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
}
# asyncpg spells the TLS option `ssl=`; libpq/psycopg spells it `sslmode=`.
_ASYNCPG_SSL_TO_SSLMODE = {
    "true": "require",
    "false": "disable",
    "disable": "disable",
    "allow": "allow",
    "prefer": "prefer",
    "require": "require",
    "verify-ca": "verify-ca",
    "verify-full": "verify-full",
}

# Hand-written migrations only: no autogenerate metadata.
target_metadata = None


def database_url(env_var: str, description: str, required: bool = True) -> URL | None:
    """Return the normalised sync URL from the environment (never logged)."""
    raw = os.environ.get(env_var, "").strip()
    if not raw:
        if not required:
            return None
        raise CommandError(
            f"{env_var} is not set. Export it with the {description} URL, e.g. "
            f"{env_var}='postgresql://USER:PASSWORD@HOST:5432/DBNAME' "
            "(percent-encode special characters in the password), then re-run "
            "alembic from the backend/ directory."
        )
    try:
        url = make_url(raw)
    except ArgumentError:
        # Do not echo the value: it contains the password.
        raise CommandError(
            f"{env_var} is not a valid database URL (expected "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME)."
        ) from None
    if url.drivername not in ACCEPTED_DRIVERS:
        raise CommandError(
            f"{env_var} uses unsupported scheme '{url.drivername}://'; expected "
            "one of: " + ", ".join(sorted(d + "://" for d in ACCEPTED_DRIVERS))
        )
    query = dict(url.query)
    if "ssl" in query:
        ssl_value = query.pop("ssl")
        if isinstance(ssl_value, tuple):
            ssl_value = ssl_value[-1]
        mapped = _ASYNCPG_SSL_TO_SSLMODE.get(str(ssl_value).lower())
        if mapped and "sslmode" not in query:
            query["sslmode"] = mapped
    return url.set(drivername=TARGET_DRIVER, query=query)


def run_migrations_offline(env_var: str, description: str) -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``); no connection needed."""
    url = database_url(env_var, description, required=False) or make_url(f"{TARGET_DRIVER}://")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online(env_var: str, description: str) -> None:
    engine = create_engine(database_url(env_var, description), poolclass=NullPool)
    try:
        try:
            connection = engine.connect()
        except OperationalError as exc:
            # str(exc.orig) is libpq's message: host/port/user, never the password.
            raise CommandError(
                f"could not connect to the database given by {env_var}: "
                f"{str(exc.orig).strip()}"
            ) from None
        with connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                compare_type=True,
                version_table=VERSION_TABLE,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def run(env_var: str, description: str) -> None:
    """The whole env.py of one config: logging from its .ini, then migrate online or offline."""
    config = context.config
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    if context.is_offline_mode():
        run_migrations_offline(env_var, description)
    else:
        run_migrations_online(env_var, description)
