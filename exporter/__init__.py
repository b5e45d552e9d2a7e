"""Prometheus exporter for the freshness of Aloudata CAN accelerated data."""

__version__ = "0.1.0"
