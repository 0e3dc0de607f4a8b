"""pgvector extension + ai_kb_documents

Revision ID: a0001_kb_documents
Revises:
Create Date: 2024-01-02 00:00:00

Requires pgvector >= 0.5.0 (HNSW index support).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "a0001_kb_documents"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

EMBEDDING_DIM = 1536


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "ai_kb_documents",
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            primary_key=True,
            server_default=sa.text("gen_random_uuid()"),
        ),
        sa.Column("scope", sa.String(50), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), nullable=True),
        sa.Column("embedding", Vector(EMBEDDING_DIM), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index("ix_ai_kb_documents_scope", "ai_kb_documents", ["scope"])
    op.execute(
        "CREATE INDEX ix_ai_kb_documents_embedding_hnsw ON ai_kb_documents "
        "USING hnsw (embedding vector_cosine_ops)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_ai_kb_documents_embedding_hnsw")
    op.drop_index("ix_ai_kb_documents_scope", table_name="ai_kb_documents")
    op.drop_table("ai_kb_documents")
    # The `vector` extension is intentionally LEFT INSTALLED: it may be shared
    # with other objects, dropping it needs more privileges than creating it
    # (on managed Postgres), and `CREATE EXTENSION IF NOT EXISTS` in upgrade()
    # makes re-upgrading idempotent.
