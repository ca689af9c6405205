"""The revisions of the results table, oldest first (``0001_...``, ``0002_...``)."""
