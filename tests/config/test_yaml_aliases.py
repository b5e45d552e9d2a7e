"""YAML aliases: a modest use loads; a "billion laughs" file or a recursive alias is refused.

PyYAML loads an alias as the very object its anchor names, so nothing explodes while loading:
the blow-up comes when the document is walked (``${VAR}`` expansion copies every occurrence).
These tests load through the real entry points, config, web config and scenario, so such a
walk would run; the wall-clock bound is the issue's "refused in under a second".
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.config import yamlfile
from exporter.config.errors import ConfigError
from exporter.config.load import parse_config
from exporter.config.yamlfile import MAX_EXPANDED_NODES, YamlError, load_yaml
from exporter.simulator.scenario import ScenarioError, load_scenario
from exporter.web.config import WebConfigError, parse_web_config

SECRET = "s3cr3t-Ap1Key-7f1e9c2b"


def laughs(levels: int = 9, key: str = "targets") -> str:
    """The classic: nine lines of nine aliases each stand for 9^9 (387 million) strings."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    lines.append(f"{key}: *l{levels - 1}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def memory_cap(extra: int = 512 * 1024 * 1024) -> Iterator[None]:
    """Cap the address space at its current size plus ``extra``: should the bound regress, the
    expansion fails the test with a MemoryError instead of taking the machine's memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + extra
    resource.setrlimit(
        resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard)
    )
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise LookupError("VmSize not in /proc/self/status")


def refused_quickly(error: type[Exception], load: Callable[[], object]) -> Exception:
    started = time.monotonic()
    with memory_cap(), pytest.raises(error) as caught:
        load()
    assert time.monotonic() - started < 1.0
    return caught.value


def test_billion_laughs_config_is_refused_in_under_a_second() -> None:
    error = refused_quickly(ConfigError, lambda: parse_config(laughs(), environ={}))
    assert isinstance(error, ConfigError)
    assert error.problems == [
        f"invalid YAML: aliases expand to more than {MAX_EXPANDED_NODES:,} nodes"
    ]


def test_billion_laughs_web_config_is_refused() -> None:
    error = refused_quickly(WebConfigError, lambda: parse_web_config(laughs(key="x")))
    assert isinstance(error, WebConfigError)
    assert error.problems == [
        f"invalid YAML: aliases expand to more than {MAX_EXPANDED_NODES:,} nodes"
    ]


def test_billion_laughs_scenario_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yml"
    path.write_text(laughs(key="plans"))
    error = refused_quickly(ScenarioError, lambda: load_scenario(path))
    assert "aliases expand to more than" in str(error)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("targets: &x [*x]\n", id="a list holding itself"),
        pytest.param("targets: &x {a: *x}\n", id="a mapping holding itself"),
        pytest.param("a: &x [1, [2, *x]]\ntargets: *x\n", id="deeper"),
        pytest.param("a: &x {b: 1, <<: *x}\n", id="merging itself"),
    ],
)
def test_an_alias_inside_its_own_anchor_is_refused(text: str) -> None:
    # It used to end in a RecursionError traceback from ${VAR} expansion.
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ={})
    assert caught.value.problems == ["invalid YAML: an alias stands for a node that contains it"]


@pytest.fixture
def bound(monkeypatch: pytest.MonkeyPatch) -> int:
    """A small bound, so the edge cases take no time."""
    monkeypatch.setattr(yamlfile, "MAX_EXPANDED_NODES", 1000)
    return 1000


def test_aliases_up_to_the_bound_load_and_one_more_node_does_not(bound: int) -> None:
    anchor = f"a: &p [{', '.join(['x'] * 99)}]\n"  # each further *p adds 100 nodes
    aliases = ", ".join(["*p"] * (bound // 100))
    assert len(load_yaml(anchor + f"b: [{aliases}]\n")["b"]) == bound // 100
    with pytest.raises(YamlError) as caught:
        load_yaml(anchor + f"b: [{aliases}, *p]\nc: *p\n")
    assert str(caught.value) == "invalid YAML: aliases expand to more than 1,000 nodes"


def test_nested_aliases_count_what_they_stand_for(bound: int) -> None:
    # b holds two aliases of a's 100 nodes (200 added); each *b adds b's 201 nodes:
    # three of them add 803 nodes in all, four 1,004.
    a_and_b = f"a: &a [{', '.join(['x'] * 99)}]\nb: &b [*a, *a]\n"
    assert load_yaml(a_and_b + "c: [*b, *b, *b]\n")
    with pytest.raises(YamlError, match="more than 1,000 nodes"):
        load_yaml(a_and_b + "c: [*b, *b, *b, *b]\n")


def test_a_document_larger_than_the_bound_without_aliases_loads(bound: int) -> None:
    many = bound * 2
    assert len(load_yaml(f"a: &a 1\nb: [{','.join(['1'] * many)}]\n")["b"]) == many


def test_modest_anchors_and_merge_keys_still_load() -> None:
    text = f"""\
targets:
  - name: prod
    url: https://can.example.com
    tenant_id: "10001"
    auth: &auth {{type: APIKEY, value: "{SECRET}"}}
  - name: test
    url: https://can-test.example.com
    tenant_id: "10002"
    auth: *auth
groups:
  - &sales
    name: sales
    target: prod
    plan_ids: &plans [p1, p2]
    labels: &labels {{team: data, owner: sales-bi}}
    thresholds: {{data_lag: {{warning: 2h}}}}
  - <<: *sales
    name: sales-test
    target: test
  - name: finance
    target: prod
    plan_ids: *plans
    labels: {{<<: *labels, team: finance}}
"""
    config = parse_config(text, environ={})
    test = config.targets["test"]
    assert test.auth_value.get_secret_value() == SECRET
    groups = {(group.target, group.name): group for group in config.groups}
    assert groups["test", "sales-test"].plans == ("p1", "p2")
    assert groups["test", "sales-test"].data_lag.warning == 7200
    assert groups["prod", "finance"].labels == (("owner", "sales-bi"), ("team", "finance"))
