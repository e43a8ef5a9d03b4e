"""Session affinity for stateful streaming replicas (Ray Serve request router).

Every call that carries `session_id=` as a keyword goes to the same replica for as long as
that replica lives: rendezvous hashing over the running replicas, so adding or removing a
replica moves only the sessions that must move (those of a dead replica, whose state is gone
anyway and which the realtime session replays from its ring buffer). Calls without a session
id go to the least loaded of two random replicas.
"""

from __future__ import annotations

import hashlib
import random

from ray.serve.request_router import (
    FIFOMixin,
    PendingRequest,
    RequestRouter,
    RunningReplica,
)

SESSION_KWARG = "session_id"


def rendezvous_owner(key: str, candidates: list[str]) -> str:
    """The candidate with the highest hash(key, candidate): stable as candidates change."""

    def weight(candidate: str) -> bytes:
        return hashlib.blake2b(f"{key}\0{candidate}".encode(), digest_size=8).digest()

    return max(candidates, key=weight)


class SessionAffinityRouter(FIFOMixin, RequestRouter):
    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        session = None
        if pending_request is not None:
            session = pending_request.kwargs.get(SESSION_KWARG)
        if session is None:
            sample = random.sample(candidate_replicas, k=min(2, len(candidate_replicas)))
            return [sample]
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        return [[by_id[rendezvous_owner(str(session), sorted(by_id))]]]
