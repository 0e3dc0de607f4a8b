"""risk analytics: factors, snapshots, betas, exposures, greeks, volatility

Revision ID: c0004_risk_analytics
Revises: c0003_merge
Create Date: 2024-01-05 00:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "c0004_risk_analytics"
down_revision: Union[str, Sequence[str], None] = "c0003_merge"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UUID = postgresql.UUID(as_uuid=True)
GEN_UUID = sa.text("gen_random_uuid()")
NOW = sa.text("now()")


def _id() -> sa.Column:
    return sa.Column("id", UUID, primary_key=True, server_default=GEN_UUID)


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW
    )


def _position_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["position_id"],
        ["positions.id"],
        name=f"fk_{table}_position_id",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "factor_definitions",
        _id(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("factor_type", sa.String(50), nullable=False),
        sa.Column("calculation_method", sa.Text(), nullable=True),
        _created_at(),
        sa.UniqueConstraint("name", name="uq_factor_definitions_name"),
    )

    op.create_table(
        "portfolio_snapshots",
        _id(),
        sa.Column("portfolio_id", UUID, nullable=False),
        sa.Column("snapshot_date", sa.Date(), nullable=False),
        sa.Column("total_value", sa.Numeric(20, 4), nullable=False),
        sa.Column("cash_value", sa.Numeric(20, 4), nullable=True),
        sa.Column("daily_pnl", sa.Numeric(20, 4), nullable=True),
        sa.Column("daily_return", sa.Numeric(12, 8), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["portfolio_id"],
            ["portfolios.id"],
            name="fk_portfolio_snapshots_portfolio_id",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "portfolio_id", "snapshot_date", name="uq_portfolio_snapshots_portfolio_date"
        ),
    )

    op.create_table(
        "position_market_betas",
        _id(),
        sa.Column("position_id", UUID, nullable=False),
        sa.Column("calc_date", sa.Date(), nullable=False),
        sa.Column("beta", sa.Numeric(12, 8), nullable=False),
        sa.Column("r_squared", sa.Numeric(12, 8), nullable=True),
        sa.Column("observations", sa.Integer(), nullable=True),
        _created_at(),
        _position_fk("position_market_betas"),
        sa.UniqueConstraint(
            "position_id", "calc_date", name="uq_position_market_betas_position_date"
        ),
    )

    op.create_table(
        "position_factor_exposures",
        _id(),
        sa.Column("position_id", UUID, nullable=False),
        sa.Column("factor_id", UUID, nullable=False),
        sa.Column("calculation_date", sa.Date(), nullable=False),
        sa.Column("exposure_value", sa.Numeric(20, 10), nullable=False),
        sa.Column("exposure_dollar", sa.Numeric(20, 4), nullable=True),
        _created_at(),
        _position_fk("position_factor_exposures"),
        sa.ForeignKeyConstraint(
            ["factor_id"],
            ["factor_definitions.id"],
            name="fk_position_factor_exposures_factor_id",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "position_id",
            "factor_id",
            "calculation_date",
            name="uq_position_factor_exposures_pos_factor_date",
        ),
    )
    op.create_index(
        "ix_position_factor_exposures_factor_id",
        "position_factor_exposures",
        ["factor_id"],
    )

    op.create_table(
        "position_greeks",
        _id(),
        sa.Column("position_id", UUID, nullable=False),
        sa.Column("calculation_date", sa.Date(), nullable=False),
        sa.Column("delta", sa.Numeric(12, 6), nullable=True),
        sa.Column("gamma", sa.Numeric(12, 6), nullable=True),
        sa.Column("theta", sa.Numeric(12, 6), nullable=True),
        sa.Column("vega", sa.Numeric(12, 6), nullable=True),
        sa.Column("rho", sa.Numeric(12, 6), nullable=True),
        _created_at(),
        _position_fk("position_greeks"),
        sa.UniqueConstraint(
            "position_id", "calculation_date", name="uq_position_greeks_position_date"
        ),
    )

    op.create_table(
        "position_volatility",
        _id(),
        sa.Column("position_id", UUID, nullable=False),
        sa.Column("calculation_date", sa.Date(), nullable=False),
        sa.Column("realized_vol_21d", sa.Numeric(12, 8), nullable=True),
        sa.Column("realized_vol_63d", sa.Numeric(12, 8), nullable=True),
        sa.Column("expected_vol", sa.Numeric(12, 8), nullable=True),
        _created_at(),
        _position_fk("position_volatility"),
        sa.UniqueConstraint(
            "position_id", "calculation_date", name="uq_position_volatility_position_date"
        ),
    )


def downgrade() -> None:
    op.drop_table("position_volatility")
    op.drop_table("position_greeks")
    op.drop_index(
        "ix_position_factor_exposures_factor_id", table_name="position_factor_exposures"
    )
    op.drop_table("position_factor_exposures")
    op.drop_table("position_market_betas")
    op.drop_table("portfolio_snapshots")
    op.drop_table("factor_definitions")
