"""The shared index: every replica's events, the claims that deduplicate across replicas, and
how far each replica has recorded.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = """
CREATE TABLE events (
    n                   bigint GENERATED ALWAYS AS IDENTITY,
    replica             text NOT NULL,
    seq                 bigint NOT NULL,
    id                  text NOT NULL,
    provider            text NOT NULL,
    message_id          text,
    reference           text,
    kind                text NOT NULL,
    state               text NOT NULL,
    time                timestamptz NOT NULL,
    received_at         timestamptz NOT NULL,
    duplicate           boolean NOT NULL,
    channel             text,
    failure             text,
    final               boolean,
    related_message_id  text,
    sender              text,
    recipient           text,
    body                bytea NOT NULL,
    PRIMARY KEY (replica, seq)
);
CREATE UNIQUE INDEX events_n ON events (n);
CREATE INDEX events_id ON events (id);
CREATE INDEX events_message ON events (message_id, provider, n)
    WHERE message_id IS NOT NULL AND NOT duplicate;
CREATE INDEX events_related ON events (related_message_id, provider, n)
    WHERE related_message_id IS NOT NULL AND NOT duplicate;
CREATE INDEX events_reference ON events (reference, n)
    WHERE reference IS NOT NULL AND NOT duplicate;
CREATE INDEX events_sender ON events (sender, n) WHERE sender IS NOT NULL AND NOT duplicate;
CREATE INDEX events_recipient ON events (recipient, n)
    WHERE recipient IS NOT NULL AND NOT duplicate;
CREATE INDEX events_time ON events (time) WHERE NOT duplicate;
CREATE INDEX events_state ON events (state, n) WHERE NOT duplicate;
CREATE INDEX events_received ON events (received_at);

CREATE TABLE claims (
    id           text PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    replica      text NOT NULL,
    seq          bigint NOT NULL
);
CREATE INDEX claims_received ON claims (received_at);

CREATE TABLE replicas (
    replica         text PRIMARY KEY,
    recorded_up_to  bigint NOT NULL,
    recorded_at     timestamptz NOT NULL
)
"""

DOWNGRADE = "DROP TABLE replicas; DROP TABLE claims; DROP TABLE events"


def upgrade() -> None:
    for statement in UPGRADE.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE.split(";"):
        op.execute(statement)
