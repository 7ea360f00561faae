"""The NATS JetStream bus: publish what one engine accepts, consume it in others.

- :class:`BusPublisher`: an engine sink (``engine.add_sink``) publishing every accepted
  item to ``<prefix>.<kind>.<feed>.<symbol>`` with a deterministic message id.
- :class:`BusFeed`: a :class:`~lean_data.feeds.base.DataFeed` consuming those subjects with
  one durable consumer per symbol, so a restarted process resumes where it stopped.

See docs/distribution.md for topologies, the message format and the delivery guarantees.
Needs nats-py: ``pip install 'lean-data[nats]'``.
"""

from __future__ import annotations

try:
    import nats  # noqa: F401  # only to fail early, with one line, when it is missing
except ImportError:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError("lean_data.bus needs nats-py: pip install 'lean-data[nats]'") from None

from lean_data.bus.feed import BusFeed
from lean_data.bus.publisher import BusPublisher

__all__ = ["BusFeed", "BusPublisher"]
