"""Where events go: the journal (SQLite), the forwarder's cursor, RabbitMQ, Prometheus metrics.

Sinks know no provider; the journal and the cursor know nothing of each other.
"""
