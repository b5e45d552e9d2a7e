"""The error every configuration problem is raised as."""

from __future__ import annotations

from exporter.config.yamlfile import ProblemsError


class ConfigError(ProblemsError):
    """The configuration is unusable; ``problems`` holds one message per problem."""

    label = "config error"
