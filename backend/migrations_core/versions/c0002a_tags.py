"""tags and position_tags (branch A off c0001_base)

Revision ID: c0002a_tags
Revises: c0001_base
Create Date: 2024-01-03 00:00:00

tags.parent_id is a self-referencing foreign key (tag hierarchy).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "c0002a_tags"
down_revision: Union[str, Sequence[str], None] = "c0001_base"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UUID = postgresql.UUID(as_uuid=True)
GEN_UUID = sa.text("gen_random_uuid()")
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("id", UUID, primary_key=True, server_default=GEN_UUID),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("color", sa.String(7), nullable=True),
        sa.Column("parent_id", UUID, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_tags_user_id", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["tags.id"], name="fk_tags_parent_id", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("user_id", "name", name="uq_tags_user_id_name"),
    )
    op.create_index("ix_tags_parent_id", "tags", ["parent_id"])

    op.create_table(
        "position_tags",
        sa.Column("position_id", UUID, nullable=False),
        sa.Column("tag_id", UUID, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW
        ),
        sa.ForeignKeyConstraint(
            ["position_id"],
            ["positions.id"],
            name="fk_position_tags_position_id",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tag_id"], ["tags.id"], name="fk_position_tags_tag_id", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("position_id", "tag_id", name="pk_position_tags"),
    )
    op.create_index("ix_position_tags_tag_id", "position_tags", ["tag_id"])


def downgrade() -> None:
    op.drop_index("ix_position_tags_tag_id", table_name="position_tags")
    op.drop_table("position_tags")
    op.drop_index("ix_tags_parent_id", table_name="tags")
    op.drop_table("tags")
