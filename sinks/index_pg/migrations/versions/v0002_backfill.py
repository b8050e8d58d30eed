"""How far a replica has backfilled the shared index with what its local index held before
``HUB_INDEX_URL`` was set: its events after ``backfill_after`` and up to ``backfill_up_to``
remain to be recorded (none when they are equal).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = """
ALTER TABLE replicas
    ADD COLUMN backfill_after bigint NOT NULL DEFAULT 0,
    ADD COLUMN backfill_up_to bigint NOT NULL DEFAULT 0
"""

DOWNGRADE = "ALTER TABLE replicas DROP COLUMN backfill_after, DROP COLUMN backfill_up_to"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
