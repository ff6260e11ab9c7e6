"""The routing generation: one counter moved in the same transaction as any change of a team's default adapter
or canary, so every gateway process reloads its routes on its next request (`gateway.routing`). Its own module
because the accounts, the registry and the router all write or read it."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.models import RoutingGeneration

GENERATION = select(RoutingGeneration.generation).where(RoutingGeneration.id == 1)


def bump(s: Session) -> None:
    """Move the routing generation (inside the transaction of the change): every gateway reloads on its next
    request."""
    s.execute(update(RoutingGeneration).where(RoutingGeneration.id == 1)
              .values(generation=RoutingGeneration.generation + 1))
