"""gristmill.learners.league: populations of policies, match-making, ratings and PBT.

Framework-free (numpy; torch only where weights are copied or saved), shared by the Doom
self-play trainer and the Generals league agent.

- :mod:`.payoff` -- AlphaStar's decayed payoff table (drives match-making) + the match record.
"""

from gristmill.learners.league.payoff import DRAW, LOSS, WIN, PayoffTable

__all__ = [
    "DRAW",
    "LOSS",
    "PayoffTable",
    "WIN",
]
