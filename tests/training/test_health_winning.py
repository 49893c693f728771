"""The advisory `d_winning` condition: D(x) and D(G(z)) far apart for a sustained stretch (issue 25)."""

import json

import pytest
import torch

from dcgan.training import Trainer
from dcgan.training.health import HealthConfig, HealthMonitor
from dcgan.training.monitors import Health

from conftest import TINY

# d_winning within a few windows; d_saturated, g_blowup and collapse kept out of the way.
WINNING = HealthConfig(warmup_steps=10, winning_logs=3, saturation_logs=10**6, blowup_logs=10**6, collapse_fraction=0.0)


def _record(d_real, d_fake, loss_d=0.07, loss_g=3.5):
    return {"loss_d": loss_d, "loss_g": loss_g, "d_real": d_real, "d_fake": d_fake}


def test_d_winning_fires_when_the_mean_gap_of_the_last_windows_stays_high():
    m = HealthMonitor(HealthConfig(warmup_steps=100))  # the defaults: a mean gap of 0.8 over 15 windows
    assert (m.config.winning_gap, m.config.winning_logs) == (0.8, 15)
    net = torch.nn.Linear(2, 2)
    for step in range(5, 100, 5):  # the warm-up: healthy, D(x) 0.7 against D(G(z)) 0.3
        assert m.check(_record(0.7, 0.3), [net], None, step) == []
    assert m.check(_record(0.97, 0.035), [net], None, 5) == []  # a winning window in the warm-up: no verdict yet
    m.recent_gaps = [0.4] * 15
    for k, step in enumerate(range(100, 155, 5), start=1):  # 11 windows apart: (4 x 0.4 + 11 x 0.935) / 15 = 0.792
        assert m.check(_record(0.97, 0.035), [net], None, step) == [], k
    issues = m.check(_record(0.97, 0.035), [net], None, 155)  # 12: (3 x 0.4 + 12 x 0.935) / 15 = 0.828
    step = 155
    assert [i.condition for i in issues] == ["d_winning"] and issues[0].advisory
    assert issues[0].message == "D is winning: D(x) 0.970 against D(G(z)) 0.035, apart by 0.83 on average over the last 15 log windows"
    for option in ("--augment translation,cutout --augment-target 0.6", "--r1-gamma", "--lr-d", "--label-smoothing 0.1"):
        assert option in issues[0].hint
    # A window where G catches up does not hide a D that stays ahead: the condition holds until the mean falls below 0.6
    assert m.check(_record(0.6, 0.4), [net], None, step + 5) and m.check(_record(0.6, 0.4), [net], None, step + 10)
    assert m.config.winning_release == 0.6
    # The recent gaps survive a checkpoint; checkpoints from before d_winning load with none.
    state = m.state_dict()
    assert len(state["recent_gaps"]) == 15
    resumed = HealthMonitor(m.config)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    assert resumed.state_dict() == state
    resumed.load_state_dict({"saturated_logs": 0, "blowup_logs": 0, "best_diversity": 0.0})
    assert resumed.recent_gaps == []


def test_d_saturated_stands_for_d_winning():
    m = HealthMonitor(HealthConfig(warmup_steps=0, saturation_logs=2, winning_logs=2))
    assert m.check(_record(0.999, 0.001), [], None, 5) == []
    issues = m.check(_record(0.999, 0.001), [], None, 10)
    assert [i.condition for i in issues] == ["d_saturated"] and not issues[0].advisory
    # Apart but no longer saturated: d_winning now speaks.
    assert [i.condition for i in m.check(_record(0.95, 0.05), [], None, 15)] == ["d_winning"]


@pytest.mark.parametrize("on_failure", ["stop", "rollback"])
def test_a_winning_d_is_reported_once_and_never_stops_the_run(tmp_path, capsys, on_failure):
    # A D that learns 500 000 times faster than G wins; d_winning only warns, whatever --on-failure says.
    run = tmp_path / "run"
    t = Trainer.from_options(
        run_dir=run,
        data="digits",
        progress=True,  # the bar: where the warning line is printed
        steps=40,
        seed=0,
        batch_size=32,
        log_every=2,
        checkpoint_every=20,
        lr_g=1e-7,
        lr_d=0.05,
        r1_gamma=0.0,  # the default R1 penalty would let G back in now and then
        on_failure=on_failure,
        **TINY,
    )
    t.callback(Health).monitor = HealthMonitor(WINNING)
    result = t.train()
    assert result.step == 40 and not result.failure and result.rollbacks == 0
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"health"' in line]
    assert [e["health"] for e in events] == ["d_winning"]  # once, at its onset
    assert events[0]["action"] == "warn" and events[0]["message"].startswith("D is winning: D(x) ")
    assert "--r1-gamma" in events[0]["hint"]
    assert t.health_events == events
    printed = capsys.readouterr()
    lines = [line for line in (printed.out + printed.err).splitlines() if "D is winning" in line]
    assert len(lines) == 1 and "training goes on" in lines[0] and "Hint: " in lines[0]
