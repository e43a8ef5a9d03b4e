"""Where the deployed shape puts things: the Serve replicas and proxies on each pod, and what
each pod's image holds."""

from __future__ import annotations

import subprocess

import pytest

from engines.spec import registered_engines
from serve.deploy.images import GATEWAY_IMAGE, extra_pins, image_named
from tests.cluster.deployment import Deployed
from tests.cluster.environments import environment
from tests.cluster.harness import HEAD

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def test_replicas_sit_on_their_own_groups(deployed: Deployed) -> None:
    """Gateway replicas only on gateway pods (never on an engine pod, whose spare CPUs would
    otherwise attract them), each engine's replicas only on its own group's pods, none on the
    head; a Serve proxy on the head and on every pod that hosts replicas."""
    table = deployed.cluster.placement(deployed.app)
    print("\n" + deployed.cluster.format_placement(table), flush=True)
    gateways = [name for name, row in table.items() if "Gateway" in row["replicas"]]
    assert gateways and all(table[name]["group"] == "gateway" for name in gateways), table
    for name, row in table.items():
        group = row["group"]
        if group == HEAD:
            assert not row["replicas"] and row["proxy"] == "HEALTHY", (name, row)
        elif group == "gateway":
            assert set(row["replicas"]) <= {"Gateway"}, (name, row)
        else:
            assert all(d.startswith(f"{group}-") for d in row["replicas"]), (name, row)
        if row["replicas"]:
            assert row["proxy"] == "HEALTHY", (name, row)
    for spec in registered_engines().values():
        hosted = [
            n
            for n, row in table.items()
            if any(d.startswith(f"{spec.key}-") for d in row["replicas"])
        ]
        assert hosted and {table[n]["group"] for n in hosted} == {spec.key}, (spec.key, table)


def test_gateway_image_holds_no_engine_library() -> None:
    """The gateway pods run realtime sessions (tests/cluster/test_contract.py) from an
    environment without any engine's own libraries."""
    gateway = extra_pins(GATEWAY_IMAGE)
    python = environment(image_named(GATEWAY_IMAGE)) / "bin" / "python"
    for spec in registered_engines().values():
        if spec.extra is None:
            continue
        own = sorted(set(extra_pins(spec.extra)) - set(gateway))
        assert own, spec
        probe = (
            "import importlib.metadata as m\n"
            f"for name in {own!r}:\n"
            "    try:\n        m.version(name)\n        print(name)\n"
            "    except m.PackageNotFoundError:\n        pass\n"
        )
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [], (
            f"{spec.key} libraries in the gateway image: {done.stdout}"
        )
