"""Deployments: a named endpoint whose models play roles (champion, challengers, shadows,
canaries, decoy, fallbacks, a default), routed per request.

- `spec.py`: `DeploymentSpec`, `Role` (the spec's JSON form is in its docstring);
- `rules.py`: the default's safe rule language;
- `flags.py`: a spec built or changed from CLI flags;
- `router.py`: `Router.decide` (sticky split, routing by field, the fallback chain);
- `rendezvous.py`: `Rendezvous.decide_and_score[_async]`: the answer within the deadline
  (each model its own pool; a fallback hedged on an event loop), a typed `Answer`;
- `offpath.py`: the off-path roles on a bounded pool, their records gathered into one
  call per role;
- `registered.py`: deployments in the registry (models checked) and their scorer cache.
"""

from __future__ import annotations

from .rendezvous import Answer, OffPathResult, Rendezvous, Routed
from .router import BUCKETS, Decision, Router, Step, bucket_of
from .rules import Rule
from .spec import Challenger, Default, DeploymentSpec, Role, RouteBy

__all__ = ["Answer", "BUCKETS", "Challenger", "Decision", "Default", "DeploymentSpec",
           "OffPathResult", "Rendezvous", "Role", "RouteBy", "Routed", "Router", "Rule", "Step",
           "bucket_of"]
