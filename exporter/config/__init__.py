"""The configuration: from the YAML file to the frozen ``Config`` the rest of the exporter reads.

``load.load_config`` reads the file (``files``: regular files only, bounded; ``yamlfile``:
safe YAML with bounded aliases), expands ``${VAR}`` (``expand``), validates it against the
schema (``schema``: pydantic models, unknown keys refused) and resolves it (``resolve``:
inheritance, secret files, proxies, schedules, labels) into the frozen dataclasses of ``model``.
Durations, schedules (fires from ``cron``), business ``calendars``, ``maintenance`` windows,
proxies and sharding are the value types a resolved group carries.

May import: the foundation modules only. No network I/O, no logging, no metrics.
"""
