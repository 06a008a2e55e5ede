"""Kept chart envelopes of long metric histories, stamped by the history's point count.

``latest_metrics.points`` counts each history's points (filled here from the stored history: one
indexed count per run and key); ``metric_envelopes`` keeps an envelope computed for the web UI's
charts while that count is unchanged (issue #17: compare 10 runs of 100,000 steps in under 1 s).

Revision ID: 0015_metric_envelopes
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_metric_envelopes"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("latest_metrics", sa.Column("points", sa.BigInteger(), nullable=True))
    op.execute("UPDATE latest_metrics SET points = (SELECT count(*) FROM metrics m "
               "WHERE m.run_id = latest_metrics.run_id AND m.key = latest_metrics.key)")
    op.create_table(
        "metric_envelopes",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("points_limit", sa.Integer(), primary_key=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("xs", sa.Text(), nullable=False),
        sa.Column("ys", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("metric_envelopes")
    with op.batch_alter_table("latest_metrics") as batch:
        batch.drop_column("points")
