"""The loop's contract with callbacks: schedules, state that survives a resume, and STOP."""

from __future__ import annotations

import pytest

from dcgan.checkpoint import load_checkpoint
from dcgan.models import ModelConfig
from dcgan.training import Action, Callback, Schedule, TrainConfig, Trainer, TrainState

from conftest import TINY

pytestmark = pytest.mark.kernels  # depends on the CPU's kernels: make test-avx2 reruns it (pyproject's markers)


class Counter(Callback):
    """Counts the steps its schedule fires at; its count is saved in checkpoints and restored on resume."""

    name = "counter"

    def __init__(self, every=None):
        self.schedule = Schedule(every)
        self.fired: list[int] = []
        self.count = 0

    def on_step_end(self, trainer):
        if self.schedule.due(trainer):
            self.fired.append(trainer.state.step)
            self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = int(state.get("count", 0))


def _trainer(data, run_dir=None, callbacks=(), **train):
    config = TrainConfig(**{"batch_size": 64, "seed": 0, "device": "cpu", **train})
    return Trainer(ModelConfig(**TINY), config, data, run_dir=run_dir, progress=False, callbacks=list(callbacks))


def test_train_state_advances_and_rolls_over_epochs():
    state = TrainState(steps_per_epoch=3)
    for _ in range(7):
        state.advance()
    assert (state.step, state.epoch, state.batch_in_epoch) == (7, 2, 1)
    assert state.epoch_fraction == pytest.approx(2 + 1 / 3)
    state.advance(), state.advance()
    assert state.at_epoch_end and state.epoch == 3


def test_schedules_fire_every_n_steps_or_at_epoch_ends(digits16):
    every3, per_epoch = Counter(3), Counter(None)
    trainer = _trainer(digits16, callbacks=[every3, per_epoch], steps=50)  # 1437 // 64 = 22 steps an epoch
    trainer.train()
    assert every3.fired == list(range(3, 51, 3))
    assert per_epoch.fired == [22, 44]


def test_callback_state_travels_in_the_checkpoint_and_resumes(tmp_path, digits16):
    straight = Counter(4)
    _trainer(digits16, callbacks=[straight], steps=21).train()

    first = Counter(4)
    _trainer(digits16, run_dir=tmp_path / "run", callbacks=[first], steps=10).train()
    assert load_checkpoint(tmp_path / "run").record.callbacks["counter"] == {"count": 2}
    resumed = Trainer.resume(tmp_path / "run", progress=False, steps=21)
    again = Counter(4)
    resumed.callbacks.append(again)
    resumed.load_state(load_checkpoint(tmp_path / "run"))  # a callback added after construction gets its state too
    resumed.train()
    assert again.count == straight.count == 5


class StopAtLog(Callback):
    def on_log(self, trainer, record):
        return Action.STOP if record["step"] >= 10 else None


def test_a_callback_can_stop_the_loop_and_the_end_is_still_saved(tmp_path, digits16):
    trainer = _trainer(digits16, run_dir=tmp_path / "run", callbacks=[StopAtLog()], steps=100, log_every=5)
    result = trainer.train()
    assert result.step == 10 and not result.interrupted
    assert load_checkpoint(tmp_path / "run").step == 10
    assert (tmp_path / "run" / "progress.gif").exists()
