"""Tracking extras: idempotent ingest batches (HTTP retries), search indexes, run description.

Revision ID: 0008
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0002"
branch_labels = ("runs_extra",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    op.create_index("ix_runs_experiment_id_start_time", "runs", ["experiment_id", "start_time"])
    op.create_index("ix_tags_key", "tags", ["key"])
    op.create_index("ix_params_key", "params", ["key"])


def downgrade() -> None:
    op.drop_index("ix_params_key", "params")
    op.drop_index("ix_tags_key", "tags")
    op.drop_index("ix_runs_experiment_id_start_time", "runs")
    op.drop_index("ix_latest_metrics_key_value", "latest_metrics")
    op.drop_table("ingest_batches")
