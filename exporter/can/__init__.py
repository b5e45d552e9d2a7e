"""Aloudata CAN's latestTime API: the client, its transport, and the parsing of the answers.

``client.CanClient`` sends httpx requests through httpx's transport API over aiohttp
(``transport``), with a seam for tests (``client.default_transport``), bounded reads and typed
failures (``models.CanError``).
``models.parse_latest_time`` is pure: body in, ``Reading`` or ``CanError`` out.

May import: config and the foundation. Knows nothing of groups' state, polling or metrics.
"""
