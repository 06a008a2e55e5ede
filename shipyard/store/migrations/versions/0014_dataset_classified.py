"""Column classifications stored with dataset versions (``{"pii": ["email"]}`` as JSON text).

They follow lineage to the runs that read a version and the model versions trained by those runs
(issue #19, data governance). Versions added before this revision keep NULL: nothing classified.

Revision ID: 0014_dataset_classified
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_dataset_classified"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dataset_versions", sa.Column("classified", sa.Text(), nullable=True))


def downgrade() -> None:
    # batch mode: drops the column on SQLite versions without ALTER TABLE ... DROP COLUMN too
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("classified")
