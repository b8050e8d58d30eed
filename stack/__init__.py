"""``make stack``: the whole stack on this machine, without Docker (``python -m stack``).

RabbitMQ and Prometheus from Debian's packages, started by the test harness' own classes
(``tests.harness``: loopback, free ports, every file under one directory, stopped by PID), and
``hub serve`` on them. A developer's tool beside ``bench/``: nothing in the hub imports it.

- ``stack.run``: starts the three, prints where each one is, waits for Ctrl-C or SIGTERM, stops
  them in the reverse order;
- ``stack.down``: ``make stack-down``, stops a running stack by the PID in its PID file.
"""
