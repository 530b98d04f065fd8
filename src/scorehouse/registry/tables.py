"""The registry's tables (the Alembic migrations create exactly these)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

models = sa.Table(
    "sh_models", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("last_version", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

versions = sa.Table(
    "sh_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, default="ready"),
    sa.Column("task", sa.String(20), nullable=False),
    sa.Column("flavor", sa.String(40), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_sh_versions_model_version"),
)

aliases = sa.Table(
    "sh_aliases", metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), primary_key=True),
    sa.Column("alias", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

events = sa.Table(
    "sh_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("alias", sa.String(100)),
    sa.Column("version", sa.Integer),
    sa.Column("from_version", sa.Integer),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    # Migration 0002: a promotion's gate results ([GateResult.to_dict()]), when gates ran.
    sa.Column("gates", sa.JSON),
    sa.Index("ix_sh_events_model_alias", "model_id", "alias", "id"),
)

# --- added by migration 0002: holdout evaluations and gate policies ---------------------

evaluations = sa.Table(
    "sh_evaluations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("holdout", sa.Text, nullable=False),  # the file evaluated on, as given
    sa.Column("holdout_sha256", sa.String(64), nullable=False),
    sa.Column("result", sa.JSON, nullable=False),  # `Evaluation.to_dict()`
    sa.Index("ix_sh_evaluations_model_version", "model_id", "version", "id"),
)

#: One row per change of an alias's gate policy (its history); the newest row is in force,
#: a row whose `policy` is NULL removed it.
gate_policies = sa.Table(
    "sh_gate_policies", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("sh_models.id"), nullable=False),
    sa.Column("alias", sa.String(100), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("policy", sa.JSON),  # `GatePolicy.to_dict()`; NULL: policy removed
    sa.Index("ix_sh_gate_policies_model_alias", "model_id", "alias", "id"),
)

# --- added by migration 0003: deployments and their history ------------------------------

deployments = sa.Table(
    "sh_deployments", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

deployment_events = sa.Table(
    "sh_deployment_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.Integer, sa.ForeignKey("sh_deployments.id"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("restores", sa.Integer),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Index("ix_sh_deployment_events_deployment", "deployment_id", "id"),
)
