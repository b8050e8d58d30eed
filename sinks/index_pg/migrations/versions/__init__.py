"""One revision a module, plain SQL through ``op.execute`` (no ORM models): ``v0001`` the
first, ``v0002`` the backfill's progress in ``replicas``."""
