"""Sample Factory's Doom action spaces and button conversion; shaping and objectives."""

import numpy as np
import pytest
from gristmill.envs.doom import DOOM_ENVS, Discretized, action_to_buttons
from gristmill.envs.doom.shaping import (
    NUM_MEASUREMENTS,
    SCHEME_DEATHMATCH_V0,
    SCHEME_DEATHMATCH_V1,
    DeltaShaping,
    GatheringShaping,
    measurements,
    objective_win,
)
from gristmill.envs.doom.spaces import button_count, space_full_discretized
from gymnasium import spaces


def test_discretized_values_span_the_range():
    d = Discretized(21, -12.5, 12.5)
    values = [d.to_continuous(i) for i in range(21)]
    assert values[0] == -12.5 and values[-1] == 12.5 and values[10] == 0.0
    assert np.allclose(np.diff(values), 1.25)
    with pytest.raises(ValueError, match="n >= 2"):
        Discretized(1, 0, 1)


def test_discrete_index_zero_is_noop_and_k_presses_button_k_minus_1():
    space = spaces.Discrete(4)
    assert action_to_buttons(space, 0) == [0, 0, 0]
    assert action_to_buttons(space, 3) == [0, 0, 1]
    with pytest.raises(ValueError, match="out of range"):
        action_to_buttons(space, 4)


def test_tuple_concatenates_groups_and_delta():
    space = space_full_discretized(with_use=True)
    # forward, strafe left, weapon 3, attack, no sprint, use, turn index 20 (+12.5 degrees)
    buttons = action_to_buttons(space, (1, 2, 3, 1, 0, 1, 20))
    assert len(buttons) == button_count(space) == 2 + 2 + 7 + 1 + 1 + 1 + 1
    assert buttons == [1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 12.5]
    with pytest.raises(ValueError, match="parts"):
        action_to_buttons(space, (1, 2))


@pytest.mark.parametrize("spec", DOOM_ENVS, ids=lambda s: s.name)
def test_every_spec_has_as_many_buttons_as_its_space_drives(spec):
    assert spec.buttons is None or button_count(spec.action_space()) == len(spec.buttons)


def test_sample_factory_action_spaces():
    by_name = {s.name: s.action_space() for s in DOOM_ENVS}
    assert by_name["doom_basic"] == spaces.Discrete(4)
    assert by_name["doom_defend_the_center"] == spaces.Tuple(
        (spaces.Discrete(3), spaces.Discrete(2))
    )
    assert by_name["doom_my_way_home"] == spaces.Tuple((spaces.Discrete(3), spaces.Discrete(3)))
    assert [s.n for s in by_name["doom_deadly_corridor"].spaces] == [3, 3, 3, 2]
    assert by_name["doom_health_gathering"] == spaces.Discrete(5)
    duel = by_name["doom_duel"].spaces
    assert [s.n for s in duel] == [3, 3, 8, 2, 2, 2, 21] and isinstance(duel[-1], Discretized)
    assert len(by_name["doom_deathmatch_bots"].spaces) == 6  # no "use" button vs bots


def test_gathering_shaping_rewards_health_gains_only():
    s = GatheringShaping()
    rewards = [s({"HEALTH": h}, False) for h in (100, 92, 100, 100, 125)]
    assert rewards == [0.0, 0.0, 1.0, 0.0, 1.0]
    assert s({"HEALTH": 200}, True) == 0.0  # nothing on the final step
    s.reset()
    assert s({"HEALTH": 150}, False) == 0.0


def test_delta_shaping_v0_hand_computed():
    s = DeltaShaping(SCHEME_DEATHMATCH_V0)
    base = {"HEALTH": 100.0, "FRAGCOUNT": 0.0, "DAMAGECOUNT": 0.0, "DEAD": 0.0}
    assert s(dict(base), False) == 0.0  # first step after spawn: just respawned, no reward
    step = dict(base, HEALTH=90.0, FRAGCOUNT=1.0, DAMAGECOUNT=500.0)
    # health -10 * 0.003 penalty, +1 frag, damage capped at 200 * 0.003
    assert s(step, False) == pytest.approx(-10 * 0.003 + 1.0 + 200 * 0.003)
    assert s(dict(step, FRAGCOUNT=0.0), True) == 0.0  # final step: none


def test_delta_shaping_v1_death_and_selected_weapon_bonus():
    s = DeltaShaping(SCHEME_DEATHMATCH_V1)
    info = {"DEATHCOUNT": 0.0, "DEAD": 0.0, "SELECTED_WEAPON": 3.0, "SELECTED_WEAPON_AMMO": 5.0}
    rewards = [s(dict(info), False) for _ in range(6)]
    # steps 1-4: weapon not held for 5 steps yet; step 5+: 0.0002 * preference 5
    assert rewards[:4] == [0.0, 0.0, 0.0, 0.0]
    assert rewards[4] == pytest.approx(0.001) and rewards[5] == pytest.approx(0.001)
    assert s(dict(info, DEATHCOUNT=1.0), False) == pytest.approx(-1.0 + 0.001)


def test_measurements_scaling():
    info = {"SELECTED_WEAPON": 2.0, "SELECTED_WEAPON_AMMO": 150.0, "HEALTH": -5.0, "AMMO3": 30.0}
    m = measurements(info)
    assert m.shape == (NUM_MEASUREMENTS,) == (23,) and m.dtype == np.float32
    assert m[0] == 2.0 and m[1] == 5.0 and m[2] == 0.0 and m[7 + 8 + 3] == 2.0


def test_objective_win_requires_strictly_most_frags():
    two = {"PLAYER_COUNT": 2, "PLAYER1_FRAGCOUNT": 3.0, "PLAYER2_FRAGCOUNT": 1.0}
    assert objective_win(dict(two, FRAGCOUNT=3.0)) == 1.0
    assert objective_win(dict(two, FRAGCOUNT=1.0)) == 0.0
    tie = {"PLAYER_COUNT": 2, "PLAYER1_FRAGCOUNT": 2.0, "PLAYER2_FRAGCOUNT": 2.0}
    assert objective_win(dict(tie, FRAGCOUNT=2.0)) == 0.0
