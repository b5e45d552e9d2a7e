"""The web config's error: what ``load_web_config`` and ``build_ssl_context`` raise.

Apart so that the file's loading (exporter.web.config) and the TLS context built from it
(exporter.web.tls) raise the same error without importing each other.
"""

from __future__ import annotations

from exporter.config.yamlfile import ProblemsError


class WebConfigError(ProblemsError):
    """The web config is unusable; ``problems`` holds one message per problem."""

    label = "web config error"
