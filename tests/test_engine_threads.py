"""Engine threads: an engine replica runs its kernels on the CPUs it is allotted (Ray sets an
actor's `OMP_NUM_THREADS` to its `num_cpus`, which CTranslate2's own default follows, so the
replica passes the number explicitly), and on the local run on every CPU of the machine."""

from __future__ import annotations

import os
from typing import Any

import pytest

from serve.deployments.engine import allotted_cpus, engine_threads
from serve.local import local_settings, machine_cpus
from serve.settings import TheoSettings


def test_the_setting_wins_else_the_allotment_rounded_up_within_the_machine() -> None:
    cpus = machine_cpus()
    assert engine_threads(3, 1.0) == 3, "an explicit cpu_threads is kept"
    assert engine_threads(0, 1.0) == 1
    assert engine_threads(0, 0.5) == 1
    assert engine_threads(0, 1.5) == min(2, cpus)
    assert engine_threads(0, 64.0) == cpus, "never more than the CPUs the process may use"
    assert engine_threads(0, None) == cpus, "outside Ray: the machine's"
    assert engine_threads(0, 0.0) == cpus, "num_cpus 0 (a GPU replica): the machine's"


def test_the_local_run_gives_engines_left_at_zero_the_whole_machine() -> None:
    settings = local_settings(TheoSettings(whisper={"cpu_threads": 0}, wenet={"cpu_threads": 3}))
    assert settings.engine("faster-whisper").cpu_threads == machine_cpus()
    assert settings.engine("wenet").cpu_threads == 3


@pytest.mark.e2e
def test_inside_a_one_cpu_actor(serve_url: str) -> None:
    """What a cluster replica sees: OMP_NUM_THREADS=1 from Ray, an allotment of 1 CPU."""
    import ray

    @ray.remote(num_cpus=1)
    def probe() -> dict[str, Any]:
        return {
            "omp": os.environ.get("OMP_NUM_THREADS"),
            "allotted": allotted_cpus(),
            "threads": engine_threads(0, allotted_cpus()),
        }

    seen = ray.get(probe.remote(), timeout=120)
    assert seen == {"omp": "1", "allotted": 1.0, "threads": 1}
