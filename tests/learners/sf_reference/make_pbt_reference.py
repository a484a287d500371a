"""Write ``sf_pbt_reference.json``: Sample Factory 2.1.1's own PBT code on stored cases.

Run it in Sample Factory's environment (``pip install sample-factory==2.1.1`` in its own venv)::

    /path/to/sf-venv/bin/python tests/learners/sf_reference/make_pbt_reference.py

It drives ``sample_factory.pbt.population_based_training`` itself: ``_perturb_cfg`` and
``_perturb_reward`` chained many times, and whole runs of ``on_init`` + ``on_training_step``
+ ``on_saved_model`` on synthetic statistics. Two things are pinned so that gristmill can
replay the draws:

- the module's ``random`` is replaced by a shim over ``numpy.random.default_rng(seed)``:
  ``random()`` -> ``Generator.random()``, ``uniform(a, b)`` -> ``a + (b - a) * random()``
  (CPython's formula), ``choice(seq)`` -> ``seq[Generator.integers(len(seq))]``;
- ``HYPERPARAMS_TO_TUNE`` (a set, whose order follows the string hash) becomes a list in
  gristmill's order.

Signals, TensorBoard and cfg files are stubbed out; everything the rules decide is recorded.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile

import numpy as np
import sample_factory.pbt.population_based_training as sfpbt
from sample_factory.utils.attr_dict import AttrDict
from sf_examples.vizdoom.doom.wrappers.reward_shaping import REWARD_SHAPING_DEATHMATCH_V1

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sf_pbt_cases import CASES, DOOM, HP_DEFAULTS, synthetic_stats  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sf_pbt_reference.json")
ORDER = [
    "learning_rate",
    "exploration_loss_coeff",
    "value_loss_coeff",
    "max_grad_norm",
    "ppo_clip_ratio",
    "ppo_clip_value",
]
PBT_DEFAULTS = dict(
    pbt_period_env_steps=5_000_000,
    pbt_start_mutation=20_000_000,
    pbt_replace_fraction=0.3,
    pbt_mutation_rate=0.15,
    pbt_replace_reward_gap=0.1,
    pbt_replace_reward_gap_absolute=1e-6,
    pbt_optimize_gamma=False,
    pbt_target_objective="true_objective",
    pbt_perturb_min=1.1,
    pbt_perturb_max=1.5,
    max_policy_lag=1000,
)


class RandomShim:
    """The three ``random`` functions SF's PBT uses, over a numpy Generator."""

    def __init__(self, seed: int):
        self.gen = np.random.default_rng(seed)

    def random(self) -> float:
        return self.gen.random()

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def choice(self, seq):
        return seq[int(self.gen.integers(len(seq)))]


def jsonable(x):
    return json.loads(json.dumps(x))


def make_pbt(cfg, num_policies, shaping, categories, tmp, extra=()):
    """A ``PopulationBasedTraining`` without its event loop (``__init__`` needs a runner)."""
    full = AttrDict({**HP_DEFAULTS, **PBT_DEFAULTS, **cfg})
    full.update(
        num_policies=num_policies,
        with_pbt=True,
        train_dir=tmp,
        experiment="pbt_reference",
        env="doom_duel" if categories else "other",
    )
    pbt = object.__new__(sfpbt.PopulationBasedTraining)
    pbt.event_loop = None  # read by EventLoopObject.__del__
    pbt.runner = AttrDict(update_reward_shaping=lambda *a: None)
    tuned = list(ORDER) + (["gamma"] if full.pbt_optimize_gamma else []) + list(extra)
    sfpbt.HYPERPARAMS_TO_TUNE = tuned  # module global read by on_init
    pbt.cfg = full
    pbt.env_info = None
    pbt.last_update = [0] * num_policies
    pbt.policy_cfg = [dict() for _ in range(num_policies)]
    pbt.policy_reward_shaping = [dict() for _ in range(num_policies)]
    pbt.default_reward_shaping = shaping
    pbt.last_pbt_summaries = 0
    pbt.reward_categories_to_tune = list(categories)
    pbt.replacement_policy = {p: None for p in range(num_policies)}
    pbt.signals = []
    pbt.emit = lambda name, *args: pbt.signals.append([name] + list(args))
    for stub in ("_save_cfg", "_save_reward_shaping", "_learner_update_cfg"):
        setattr(pbt, stub, lambda *a, **k: None)
    pbt._actors_update_shaping_scheme = lambda *a, **k: None
    pbt._write_pbt_summaries = lambda *a, **k: None
    return pbt, tuned


def perturb_case(case: dict, shaping) -> dict:
    """``_perturb_cfg`` then ``_perturb_reward``, each fed its previous output, ``chain`` times."""
    sfpbt.random = RandomShim(case["seed"])
    with tempfile.TemporaryDirectory() as tmp:
        pbt, tuned = make_pbt(
            case["cfg"], 2, shaping, case.get("categories", ()), tmp, case.get("extra", ())
        )
        hp, rs, outs = {k: pbt.cfg[k] for k in tuned}, copy.deepcopy(shaping), []
        for _ in range(case["chain"]):
            hp = pbt._perturb_cfg(hp)
            rs = pbt._perturb_reward(rs)
            outs.append({"hyperparameters": hp, "reward_shaping": rs})
    return {"tuned": tuned, "outputs": jsonable(outs)}


def run_case(case: dict, shaping) -> dict:
    """``on_init``, then ``on_training_step`` (+ ``on_saved_model``) on synthetic statistics."""
    sfpbt.random = RandomShim(case["seed"])
    n = case["policies"]
    record = []
    with tempfile.TemporaryDirectory() as tmp:
        pbt, tuned = make_pbt(case["cfg"], n, shaping, case.get("categories", ()), tmp)
        pbt.on_init(AttrDict(env_info=AttrDict(reward_shaping_scheme=shaping)))
        init = jsonable(
            {"hyperparameters": pbt.policy_cfg, "reward_shaping": pbt.policy_reward_shaping}
        )
        before = now = init
        stats = synthetic_stats(case["seed"], n, pbt.cfg.pbt_period_env_steps, case["iterations"])
        for reported, objectives in stats:
            runner = AttrDict(
                env_steps={p: s for p, s in enumerate(reported) if s is not None},
                policy_avg_stats={"true_objective": objectives},
                writers={p: None for p in range(n)},
            )
            pbt.signals = []
            pbt.on_training_step(runner, 0)
            saves, pbt.signals = pbt.signals, []
            for signal in saves:
                pbt.on_saved_model(int(signal[0][len("save_model") :]))
            loads = [
                [int(s[0][len("load_model") :]), int(s[1])]
                for s in pbt.signals
                if s[0].startswith("load_model")
            ]
            now = jsonable(
                {"hyperparameters": pbt.policy_cfg, "reward_shaping": pbt.policy_reward_shaping}
            )
            changed = {
                str(p): {k: now[k][p] for k in now}
                for p in range(n)
                if any(now[k][p] != before[k][p] for k in now)
            }
            before = now
            # only what changed is stored, to keep the file small
            record.append(
                {"loads": loads, "changed": changed, "last_update": list(pbt.last_update)}
            )
    return {"tuned": tuned, "init": init, "steps": record, "final": now}


def main() -> None:
    out = []
    for case in CASES:
        shaping = case.get("shaping")
        if shaping == DOOM:
            shaping = jsonable(REWARD_SHAPING_DEATHMATCH_V1)
        shaping = copy.deepcopy(shaping)
        result = (perturb_case if case["kind"] == "perturb" else run_case)(case, shaping)
        out.append({"shaping": shaping, **result})
    with open(OUT, "w") as f:
        json.dump({"sample_factory": "2.1.1", "results": out}, f)
    print(f"wrote {OUT}: {len(out)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
