"""Reusable helpers for integration tests (throwaway brokers, ports)."""
