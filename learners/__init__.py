"""gristmill.learners: models, loss functions and learners (torch; no gymnasium, no envs).

- :mod:`.models` -- Sample Factory's conv encoder / Nature CNN / MLP, GRU/LSTM core, heads.
- :mod:`.distributions` -- :class:`ActionSpec` and the action distribution.
- :mod:`.losses` -- APPO (Sample Factory) and CleanRL PPO loss terms as plain functions.
- :mod:`.advantages` -- Sample Factory's GAE / V-trace over gristmill's kernels.
- :mod:`.normalize` -- running mean/std for observations and returns.
- :mod:`.policy_stack` -- several policies of one architecture acting in one forward pass.
- :mod:`.appo`, :mod:`.ppo` -- the learner classes.
- :mod:`.host_memory` -- keep freed host memory mapped (CPU training without page faults).
- :mod:`.generals_net` -- the Generals agent's residual CNN / U-Net with a masked move policy.
- :mod:`.league` -- populations, payoff table, match-making (PFSP), ratings and PBT.
"""

from gristmill.learners.appo import APPOConfig, APPOLearner
from gristmill.learners.device import select_device
from gristmill.learners.distributions import ActionDistribution, ActionSpec
from gristmill.learners.generals_net import GeneralsNet, GeneralsNetConfig, MaskedPolicy
from gristmill.learners.host_memory import retain_freed_memory
from gristmill.learners.league import (
    PBT,
    PFSP,
    AgentPolicyMapping,
    PayoffTable,
    PBTConfig,
    Population,
    RatingTable,
    fit_ratings,
)
from gristmill.learners.models import ActorCritic, ModelConfig
from gristmill.learners.normalize import RunningMeanStd, RunningMeanStdDict
from gristmill.learners.policy_stack import PolicyStack
from gristmill.learners.ppo import PPOConfig, PPOLearner, cleanrl_atari_model_config

__all__ = [
    "APPOConfig",
    "APPOLearner",
    "ActionDistribution",
    "ActionSpec",
    "ActorCritic",
    "ModelConfig",
    "PPOConfig",
    "PPOLearner",
    "PolicyStack",
    "RunningMeanStd",
    "RunningMeanStdDict",
    "GeneralsNet",
    "GeneralsNetConfig",
    "MaskedPolicy",
    "AgentPolicyMapping",
    "PBT",
    "PBTConfig",
    "PFSP",
    "PayoffTable",
    "Population",
    "RatingTable",
    "cleanrl_atari_model_config",
    "fit_ratings",
    "retain_freed_memory",
    "select_device",
]
