"""Alembic environment for the Core database (sigmasight_db), URL from ``DATABASE_URL``.

The shared logic (URL normalisation, error messages, online/offline) is in ../migration_env.py.
"""

from migration_env import run

run("DATABASE_URL", "Core database (sigmasight_db)")
