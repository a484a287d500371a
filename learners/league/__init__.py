"""gristmill.learners.league: populations of policies, match-making, ratings and PBT.

Framework-free (numpy; torch only where weights are copied or saved), shared by the Doom
self-play trainer and the Generals league agent.

- :mod:`.payoff` -- AlphaStar's decayed payoff table (drives match-making) + the match record.
- :mod:`.matchmaking` -- Sample Factory's agent->policy mapping and AlphaStar's PFSP.
- :mod:`.ratings` -- the rating table of record: batch Bradley-Terry/Elo with bootstrap intervals.
- :mod:`.population` -- N learning policies + frozen snapshots + fixed members, saved as one.
- :mod:`.storage` -- atomic checkpoint files.
- :mod:`.pbt` -- Sample Factory 2.1.1's population-based training rules, as pure decisions.

Typical wiring (the app trains; this layer decides and remembers)::

    pbt = PBT(PBTConfig(num_policies=N, **pbt_args), {k: getattr(cfg, k) for k in
              tuned_hyperparameters(pbt_cfg)}, default_shaping, REWARD_CATEGORIES_TO_TUNE,
              rng=np.random.default_rng(seed), log_path=f"{exp}/pbt_events.jsonl")
    pop = Population(exp, N, make_model, make_optimizer, defaults, default_shaping)
    pop.register("pbt", pbt)                      # + any match-maker (PFSP, AgentPolicyMapping)
    if pop.has_checkpoint():
        pop.load()                                # weights, optimizers, PBT, payoff, ratings
    else:                                         # policy 0 keeps the defaults
        for k, (hp, shaping) in enumerate(zip(*pbt.initial())):
            pop.set_hyperparameters(k, hp, shaping)
    ...                                           # train pop[k].model with pop[k].optimizer,
    pop.payoff.update("p0", "p0@1200", WIN)       # keep pop[k].version / .env_steps current
    for decision in pbt.step([p.env_steps for p in pop.policies], last_objectives,
                             [p.hyperparameters for p in pop.policies],
                             [p.reward_shaping for p in pop.policies]):
        pop.apply(decision)                       # copy weights + version jump, new values
    opponent = pfsp.sample(pop.payoff, "p0", [s for s in pop.snapshots] + pop.fixed)
    pop.update_ratings(anchor="random"); pop.save()
"""

from gristmill.learners.league.matchmaking import (
    PFSP,
    PFSP_WEIGHTINGS,
    AgentPolicyMapping,
    pfsp_weights,
)
from gristmill.learners.league.payoff import DRAW, LOSS, WIN, PayoffTable
from gristmill.learners.league.pbt import (
    HYPERPARAMS_TO_TUNE,
    PBT,
    REWARD_CATEGORIES_TO_TUNE,
    Mutation,
    PBTConfig,
    PBTDecision,
    pbt_scalars,
    tuned_hyperparameters,
)
from gristmill.learners.league.population import (
    Policy,
    Population,
    Snapshot,
    Stateful,
    load_member_weights,
)
from gristmill.learners.league.ratings import (
    ELO_SCALE,
    RatingTable,
    fit_bradley_terry,
    fit_ratings,
)
from gristmill.learners.league.storage import atomic_torch_save, atomic_write_json

__all__ = [
    "AgentPolicyMapping",
    "DRAW",
    "ELO_SCALE",
    "HYPERPARAMS_TO_TUNE",
    "LOSS",
    "Mutation",
    "PBT",
    "PBTConfig",
    "PBTDecision",
    "PFSP",
    "PFSP_WEIGHTINGS",
    "PayoffTable",
    "Policy",
    "Population",
    "REWARD_CATEGORIES_TO_TUNE",
    "RatingTable",
    "Snapshot",
    "Stateful",
    "WIN",
    "atomic_torch_save",
    "atomic_write_json",
    "fit_bradley_terry",
    "fit_ratings",
    "load_member_weights",
    "pbt_scalars",
    "pfsp_weights",
    "tuned_hyperparameters",
]
