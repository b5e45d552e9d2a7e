"""Strict YAML reading and one-line validation problems, shared by config and scenarios."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from exporter.textsafe import escape_controls

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class ProblemsError(Exception):
    """A file is unusable; ``problems`` holds one message per problem, ``lines()`` the output."""

    label = "error"

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("; ".join(self.problems))

    def lines(self) -> list[str]:
        """One line per problem, for a terminal: a key or value from the file may hold any
        character, and control characters are escaped."""
        suffix = f" (file={self.source})" if self.source else ""
        return [escape_controls(f"{self.label}: {problem}{suffix}") for problem in self.problems]


class YamlError(ValueError):
    """The text is not valid YAML; the message is one line with the position."""


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader that rejects duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        mapping: dict[Hashable, Any] = super().construct_mapping(node, deep=deep)
        return mapping


# A 10,000-group config with five plans, labels, thresholds and a schedule per group is
# 440,000 nodes. Aliases are shared when loaded but copied wherever the document is walked
# (${VAR} expansion, validation): a few lines of nested aliases ("billion laughs") would stand
# for 10^9 nodes.
MAX_EXPANDED_NODES = 2_000_000


class _ExpansionError(yaml.YAMLError):
    pass


def _check_expansion(root: yaml.Node, limit: int) -> None:
    """Refuse a document whose aliases stand for more than ``limit`` nodes in all, or one whose
    alias stands for a node containing it (walking it would never end).

    Each distinct node is visited once: an alias is the very node its anchor names, so its
    size is known by then; each reference to a node after the first adds that size.
    """
    sizes: dict[int, int] = {}  # a collection's size with its aliases expanded, capped
    referenced: set[int] = set()
    ancestors: set[int] = set()
    added = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_counted = stack.pop()
        key = id(node)
        if children_counted:
            ancestors.discard(key)
            size = 1
            for child in _children(node):
                child_key = id(child)
                child_size = sizes.get(child_key, 1)  # a scalar is one node
                size += child_size
                if child_key in referenced:
                    added += child_size
                    if added > limit:
                        raise _ExpansionError(f"aliases expand to more than {limit:,} nodes")
                else:
                    referenced.add(child_key)
            sizes[key] = min(size, limit + 1)
        elif key not in sizes and not isinstance(node, yaml.ScalarNode):
            if key in ancestors:
                raise _ExpansionError("an alias stands for a node that contains it")
            ancestors.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def load_yaml(text: str) -> Any:
    try:
        return _load(text)
    except _ExpansionError as exc:
        raise YamlError(f"invalid YAML: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YamlError(
            f"invalid YAML: {exc.problem or exc.context or 'syntax error'}{where}"
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {type(exc).__name__}") from None
    # PyYAML's constructors raise plain exceptions for values they cannot build:
    # `2024-13-45` (a date), `!!int x`, an int of 5,000 digits, `!!set 0`.
    # Their text echoes the value, which could be a secret: name the kind of problem only.
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
        raise YamlError(
            "invalid YAML: a value cannot be built; check dates (2024-13-45), very long "
            "numbers and !!tags"
        ) from None
    except RecursionError:
        raise YamlError("invalid YAML: nested too deeply") from None


def _load(text: str) -> Any:
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        # An alias needs an anchor, and an anchor an "&": without one there is nothing to count.
        if "&" in text:
            _check_expansion(node, MAX_EXPANDED_NODES)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def format_location(loc: Sequence[int | str]) -> str:
    """Turn a pydantic ``loc`` into ``groups[2].plan_ids``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text or "<root>"


def validation_problems(exc: ValidationError) -> Iterator[str]:
    """One ``path: message`` line per error, built from loc and msg only.

    Never from ``input`` or ``str(exc)``: they could echo a secret value.
    """
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
        # A model-level check names its own key path in its message.
        yield f"{format_location(error['loc'])}: {message}" if error["loc"] else message


def os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
