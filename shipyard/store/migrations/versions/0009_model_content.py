"""Model versions record the content hash of their model file, so the same model is one version.

Revision ID: 0009
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Versions registered before this revision keep NULL: their file hash is only inside the
    # packaged object, which a migration cannot read; they are simply never matched.
    op.add_column("model_versions", sa.Column("content_oid", sa.String(80), nullable=True))
    op.create_index("ix_model_versions_model_id_content_oid", "model_versions", ["model_id", "content_oid"])


def downgrade() -> None:
    op.drop_index("ix_model_versions_model_id_content_oid", "model_versions")
    op.drop_column("model_versions", "content_oid")
