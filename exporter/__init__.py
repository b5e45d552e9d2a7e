"""Prometheus exporter for the freshness of Aloudata CAN accelerated data.

The packages follow the flow, and import only downwards (tests/tools/imports.py checks it):

    cli → daemon → web, polling → metrics → state → can → config → foundation

- ``config``: the YAML file, read, validated and resolved into a frozen ``Config``.
- ``can``: the latestTime client and the parsing of its answers.
- ``polling``: the schedule of polls, per-target workers, backoff, circuits, drilldown.
- ``state``: the immutable snapshot of each group, swapped whole after each poll.
- ``metrics``: what is published, declared once, and its renderers.
- ``web``: the HTTP server: /metrics, health, reload, landing page, web config.
- ``daemon``: wiring, reloads, signals; ``cli`` parses the flags and hands over.
- ``simulator``: a fake CAN for --demo and the tests; the daemon imports it only for --demo.
- Foundation modules (``clock``, ``listen``, ``logs``, ``redact``, ``textsafe``) import nothing
  of the exporter and may be used by any layer.

docs/architecture.md draws the flow and walks through adding a metric and a config key.
"""

__version__ = "0.1.0"
