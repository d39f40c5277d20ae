"""File ledger keeps one row per file (attempts), corrections keep the old text (document_revisions)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingested_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("rows_updated", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_ingested_files_name_sha", ["name", "sha256"], unique=False)
    op.create_table(
        "document_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.Column("replaced_at", sa.DateTime(), nullable=False),
        sa.Column("replaced_by_file_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"]),
        sa.ForeignKeyConstraint(["replaced_by_file_id"], ["ingested_files.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("document_revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_revisions_document_id"), ["document_id"], unique=False)


def downgrade() -> None:
    op.drop_table("document_revisions")
    with op.batch_alter_table("ingested_files", schema=None) as batch_op:
        batch_op.drop_index("ix_ingested_files_name_sha")
        batch_op.drop_column("rows_updated")
        batch_op.drop_column("attempts")
