"""What the exporter publishes: every metric declared once, and the code that renders it.

``declarations`` declares each metric once (name, type, help, labels, level), in exposition
order; ``samples`` computes every value from the store at scrape time and hands it to a sink:
``collector`` builds prometheus_client families from it (OpenMetrics and the reference text),
``exposition`` writes the same text format fast. ``selfmetrics`` registers the exporter's own
gauges; ``report`` is the table of ``--once`` and the landing page.

May import: state, can, config and the foundation. Never calls CAN or changes the state.
"""
