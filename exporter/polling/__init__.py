"""Polling: when each group is asked, by whom, and what happens when CAN fails.

``poller.Poller`` schedules one APScheduler job per group and applies config reloads
(``reconcile`` says what a new config changes, ``clients`` holds each target's client and
circuit); ``workers`` runs each target's due polls on at most ``max_concurrency`` workers;
``run`` sends one group's poll; ``outcomes`` logs what came back; ``resilience`` holds the
backoff and the per-target circuit; ``drilldown`` decides which plans to ask one by one
(``per_plan: auto``). Results are written to the store as snapshots.

May import: metrics, state, can, config and the foundation; never web or the daemon.
"""
