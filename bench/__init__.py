"""The benchmark of the hub against its ceilings (``make bench``; see ``bench/README.md``)."""
