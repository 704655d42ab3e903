"""Peer ratings (Nosedive)."""

from credsim.systems.peer_rating.system import PeerRatings

__all__ = ["PeerRatings"]
