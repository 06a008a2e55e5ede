"""Pipeline runs and stage executions.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = ("pipeline",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False, index=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("executor", sa.String(200), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
    )
    op.create_table(
        "stage_executions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("pipeline_run_id", sa.String(32), sa.ForeignKey("pipeline_runs.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("stage", sa.String(250), nullable=False, index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("fingerprint", sa.String(80), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=True),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("log_oid", sa.String(80), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("stage_executions")
    op.drop_table("pipeline_runs")
