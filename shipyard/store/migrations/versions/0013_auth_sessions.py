"""Auth: browser sessions kept on the server, so logging out (or a disabled user, a new password)
ends a session at once, even for a copy of its cookie.

The cookie carries a random session id; the store keeps only its SHA-256 (``hash``). Times are
float seconds since the epoch (UTC).

Revision ID: 0013_auth_sessions
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_auth_sessions"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False, index=True),
        sa.Column("via", sa.String(10), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("auth_sessions")
