"""MLflow 3 logged models (tags, params, metrics, artifact files), run <-> model links, NaN metrics, dataset input tags.

SQLite stores a REAL NaN as NULL, so a metric point records ``is_nan`` (value 0) as MLflow does;
infinities are stored as they are.

Revision ID: 0010
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0002"
branch_labels = ("logged_models",)
depends_on = None


def _child(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("model_id", sa.String(40), sa.ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True),
        *columns,
    )


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id"), nullable=False, index=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("source_run_id", sa.String(32), nullable=True, index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("model_type", sa.String(500), nullable=True),
        sa.Column("artifact_location", sa.Text(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_logged_models_experiment_id_name", "logged_models", ["experiment_id", "name"])
    _child("logged_model_tags", sa.Column("key", sa.String(250), primary_key=True),
           sa.Column("value", sa.Text(), nullable=False))
    _child("logged_model_params", sa.Column("key", sa.String(250), primary_key=True),
           sa.Column("value", sa.Text(), nullable=False))
    _child("logged_model_artifacts", sa.Column("path", sa.String(1000), primary_key=True),
           sa.Column("oid", sa.String(80), nullable=False), sa.Column("size", sa.BigInteger(), nullable=False))
    op.create_table(
        "logged_model_metrics",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(40), sa.ForeignKey("logged_models.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("dataset_name", sa.String(500), nullable=True),
        sa.Column("dataset_digest", sa.String(36), nullable=True),
    )
    op.create_table(
        "run_model_io",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_id", sa.String(40), primary_key=True),
        sa.Column("direction", sa.String(10), primary_key=True),
        sa.Column("step", sa.Integer(), nullable=False),
    )
    for table in ("metrics", "latest_metrics"):
        op.add_column(table, sa.Column("is_nan", sa.Boolean(), nullable=False, server_default=sa.false()))
    # every input tag of a dataset input (MLflow allows any), as a JSON list of {key, value}
    op.add_column("dataset_inputs", sa.Column("tags", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_inputs") as batch:
        batch.drop_column("tags")
    for table in ("latest_metrics", "metrics"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("is_nan")
    for name in ("run_model_io", "logged_model_metrics", "logged_model_artifacts", "logged_model_params", "logged_model_tags"):
        op.drop_table(name)
    op.drop_index("ix_logged_models_experiment_id_name", "logged_models")
    op.drop_table("logged_models")
