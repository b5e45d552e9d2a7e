"""The HTTP side: the aiohttp app and the ``--web.config.file`` it is guarded by.

``app`` serves the telemetry path, ``/healthz``, ``/readyz``, ``/-/reload`` and the landing
page (``landing`` renders it); ``config`` reads the web config (TLS, basic auth, headers,
``rate_limit``) and ``tls`` builds the TLS context from it (both raise
``errors.WebConfigError``); ``security`` applies it and reloads it; ``auth``,
``passwordchecks`` and ``ratelimit`` are its parts.

May import: metrics, state, config and the foundation; never polling or the daemon, and a
handler never awaits CAN.
"""
