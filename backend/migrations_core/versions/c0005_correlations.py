"""correlation calculations and pairwise correlations

Revision ID: c0005_correlations
Revises: c0004_risk_analytics
Create Date: 2024-01-06 00:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "c0005_correlations"
down_revision: Union[str, Sequence[str], None] = "c0004_risk_analytics"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UUID = postgresql.UUID(as_uuid=True)
GEN_UUID = sa.text("gen_random_uuid()")
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "correlation_calculations",
        sa.Column("id", UUID, primary_key=True, server_default=GEN_UUID),
        sa.Column("portfolio_id", UUID, nullable=False),
        sa.Column("calculation_date", sa.Date(), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("overall_correlation", sa.Numeric(12, 8), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW
        ),
        sa.ForeignKeyConstraint(
            ["portfolio_id"],
            ["portfolios.id"],
            name="fk_correlation_calculations_portfolio_id",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "portfolio_id",
            "calculation_date",
            "duration_days",
            name="uq_correlation_calculations_portfolio_date_duration",
        ),
    )

    op.create_table(
        "pairwise_correlations",
        sa.Column("id", UUID, primary_key=True, server_default=GEN_UUID),
        sa.Column("correlation_calculation_id", UUID, nullable=False),
        sa.Column("symbol_1", sa.String(20), nullable=False),
        sa.Column("symbol_2", sa.String(20), nullable=False),
        sa.Column("correlation_value", sa.Numeric(12, 8), nullable=False),
        sa.Column("data_points", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["correlation_calculation_id"],
            ["correlation_calculations.id"],
            name="fk_pairwise_correlations_calculation_id",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "symbol_1 <> symbol_2", name="ck_pairwise_correlations_distinct_symbols"
        ),
    )
    op.create_index(
        "ix_pairwise_correlations_calculation_id",
        "pairwise_correlations",
        ["correlation_calculation_id"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_pairwise_correlations_calculation_id", table_name="pairwise_correlations"
    )
    op.drop_table("pairwise_correlations")
    op.drop_table("correlation_calculations")
