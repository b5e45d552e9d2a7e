"""What the exporter knows about each group and target, between polls and scrapes.

``snapshots``: the immutable ``GroupSnapshot`` of each group (its last reading, poll health,
change detection, freshness accounting) and the ``SnapshotStore`` that swaps one group's
snapshot in a single assignment, so a scrape never sees half a poll. ``freshness``: what
"fresh" means for a group on a reading, and from which instant it stops being fresh.

May import: can (the readings), config (the groups) and the foundation. Imports neither the
client nor polling nor web, and awaits nothing.
"""
