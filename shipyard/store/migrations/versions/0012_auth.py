"""Auth: principals (users and service accounts), projects, roles per project, API tokens.

Tokens are stored only as their SHA-256 (``hash``) plus a short display ``prefix``; the token
itself is shown once when created. Times are float seconds since the epoch (UTC).

Revision ID: 0012
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0001"
branch_labels = ("auth",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_principals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("owner_project", sa.String(100), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "auth_projects",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "auth_roles",
        sa.Column("principal_id", sa.Integer(), sa.ForeignKey("auth_principals.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("project", sa.String(100), sa.ForeignKey("auth_projects.name", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
    )
    op.create_table(
        "auth_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("prefix", sa.String(16), nullable=False, index=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("principal_id", sa.Integer(), sa.ForeignKey("auth_principals.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("project", sa.String(100), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("auth_tokens")
    op.drop_table("auth_roles")
    op.drop_table("auth_projects")
    op.drop_table("auth_principals")
