"""ai_memories + ai_feedback

Revision ID: a0002_memories_feedback
Revises: a0001_kb_documents
Create Date: 2024-01-03 00:00:00

ai_memories.user_id references users.id in the *Core* database; there is no
cross-database foreign key, so it is a plain NOT NULL uuid column.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "a0002_memories_feedback"
down_revision: Union[str, Sequence[str], None] = "a0001_kb_documents"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

EMBEDDING_DIM = 1536
UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    op.create_table(
        "ai_memories",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("user_id", UUID, nullable=False),  # Core users.id, no cross-db FK
        sa.Column("scope", sa.String(50), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tags", postgresql.JSONB(), nullable=True),
        sa.Column("embedding", Vector(EMBEDDING_DIM), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index("ix_ai_memories_user_id", "ai_memories", ["user_id"])
    op.execute(
        "CREATE INDEX ix_ai_memories_embedding_hnsw ON ai_memories "
        "USING hnsw (embedding vector_cosine_ops)"
    )

    op.create_table(
        "ai_feedback",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("memory_id", UUID, nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.ForeignKeyConstraint(
            ["memory_id"],
            ["ai_memories.id"],
            name="fk_ai_feedback_memory_id",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_ai_feedback_rating"),
    )
    op.create_index("ix_ai_feedback_memory_id", "ai_feedback", ["memory_id"])


def downgrade() -> None:
    op.drop_index("ix_ai_feedback_memory_id", table_name="ai_feedback")
    op.drop_table("ai_feedback")
    op.execute("DROP INDEX IF EXISTS ix_ai_memories_embedding_hnsw")
    op.drop_index("ix_ai_memories_user_id", table_name="ai_memories")
    op.drop_table("ai_memories")
