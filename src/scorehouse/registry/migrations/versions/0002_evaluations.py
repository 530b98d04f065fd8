"""Holdout evaluations, gate policies with history, and gate results on alias events.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sh_evaluations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("holdout", sa.Text, nullable=False),
        sa.Column("holdout_sha256", sa.String(64), nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("ix_sh_evaluations_model_version", "sh_evaluations",
                    ["model_id", "version", "id"])
    op.create_table(
        "sh_gate_policies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("policy", sa.JSON),
    )
    op.create_index("ix_sh_gate_policies_model_alias", "sh_gate_policies",
                    ["model_id", "alias", "id"])
    # A nullable column: SQLite adds it with a plain ALTER TABLE, no table rebuild.
    op.add_column("sh_events", sa.Column("gates", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("sh_events") as batch:
        batch.drop_column("gates")
    op.drop_index("ix_sh_gate_policies_model_alias", table_name="sh_gate_policies")
    op.drop_table("sh_gate_policies")
    op.drop_index("ix_sh_evaluations_model_version", table_name="sh_evaluations")
    op.drop_table("sh_evaluations")
