"""What the exporter publishes: every metric declared once, and the code that renders it.

``declarations`` names each metric (name, type, help, labels, family); ``collector`` computes
the samples from the store at scrape time for prometheus_client (OpenMetrics and the
reference text); ``exposition`` writes the same text format fast; ``report`` is the table of
``--once`` and the landing page.

May import: state, can, config and the foundation. Never calls CAN or changes the state.
"""
