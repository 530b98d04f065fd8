"""Initial registry: models, versions, aliases, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sh_models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "sh_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("flavor", sa.String(40), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_sh_versions_model_version"),
    )
    op.create_table(
        "sh_aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), primary_key=True),
        sa.Column("alias", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "sh_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("alias", sa.String(100)),
        sa.Column("version", sa.Integer),
        sa.Column("from_version", sa.Integer),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_sh_events_model_alias", "sh_events", ["model_id", "alias", "id"])


def downgrade() -> None:
    op.drop_index("ix_sh_events_model_alias", table_name="sh_events")
    for table in ("sh_events", "sh_aliases", "sh_versions", "sh_models"):
        op.drop_table(table)
