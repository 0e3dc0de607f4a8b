"""company_profiles and market_data_cache (branch B off c0001_base)

Revision ID: c0002b_market_data
Revises: c0001_base
Create Date: 2024-01-03 00:00:01

market_data_cache.id is a BIGINT identity column (sequence-backed).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c0002b_market_data"
down_revision: Union[str, Sequence[str], None] = "c0001_base"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "company_profiles",
        sa.Column("symbol", sa.String(20), primary_key=True),
        sa.Column("company_name", sa.String(255), nullable=True),
        sa.Column("sector", sa.String(100), nullable=True),
        sa.Column("industry", sa.String(100), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("market_cap", sa.Numeric(24, 2), nullable=True),
        sa.Column("employees", sa.Integer(), nullable=True),
        sa.Column("country", sa.String(50), nullable=True),
        sa.Column("exchange", sa.String(20), nullable=True),
        sa.Column("website", sa.Text(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW
        ),
    )
    op.create_index("ix_company_profiles_sector", "company_profiles", ["sector"])

    op.create_table(
        "market_data_cache",
        sa.Column(
            "id",
            sa.BigInteger(),
            sa.Identity(always=False),
            primary_key=True,
        ),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("open", sa.Numeric(16, 4), nullable=True),
        sa.Column("high", sa.Numeric(16, 4), nullable=True),
        sa.Column("low", sa.Numeric(16, 4), nullable=True),
        sa.Column("close", sa.Numeric(16, 4), nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("data_source", sa.String(20), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW
        ),
        sa.UniqueConstraint("symbol", "date", name="uq_market_data_cache_symbol_date"),
    )
    op.create_index("ix_market_data_cache_date", "market_data_cache", ["date"])


def downgrade() -> None:
    op.drop_index("ix_market_data_cache_date", table_name="market_data_cache")
    op.drop_table("market_data_cache")
    op.drop_index("ix_company_profiles_sector", table_name="company_profiles")
    op.drop_table("company_profiles")
