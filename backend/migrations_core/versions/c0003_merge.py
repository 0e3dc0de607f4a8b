"""merge branches c0002a_tags + c0002b_market_data; add users.default_portfolio_id FK

Revision ID: c0003_merge
Revises: c0002a_tags, c0002b_market_data
Create Date: 2024-01-04 00:00:00

Adds the FK users.default_portfolio_id -> portfolios.id (ON DELETE SET NULL).
Together with portfolios.user_id -> users.id this forms a foreign-key CYCLE
between users and portfolios (tools that order tables by FK dependencies must
cope with it, e.g. by loading with the FK deferred or in two passes).
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c0003_merge"
down_revision: Union[str, Sequence[str], None] = ("c0002a_tags", "c0002b_market_data")
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_foreign_key(
        "fk_users_default_portfolio_id",
        "users",
        "portfolios",
        ["default_portfolio_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_users_default_portfolio_id", "users", ["default_portfolio_id"])


def downgrade() -> None:
    op.drop_index("ix_users_default_portfolio_id", table_name="users")
    op.drop_constraint("fk_users_default_portfolio_id", "users", type_="foreignkey")
