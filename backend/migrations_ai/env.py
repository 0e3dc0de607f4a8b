"""Alembic environment for the AI database (sigmasight_ai_db, pgvector), URL from
``AI_DATABASE_URL``.

The shared logic (URL normalisation, error messages, online/offline) is in ../migration_env.py.
"""

# Registers the pgvector `vector` type with SQLAlchemy (used by the revisions).
import pgvector.sqlalchemy  # noqa: F401
from migration_env import run

run("AI_DATABASE_URL", "AI database (sigmasight_ai_db, pgvector)")
