"""The typed state the loop advances, and the flags callbacks raise to steer it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TrainState", "Flags"]


@dataclass
class TrainState:
    """Where training stands. Saved in every checkpoint; a resumed run continues from it exactly."""

    steps_per_epoch: int  # iterations in one epoch (all processes together take len(data) // batch images)
    step: int = 0  # iterations done
    epoch: int = 0  # complete epochs done
    batch_in_epoch: int = 0  # position within the current epoch
    elapsed: float = 0.0  # training seconds over all sessions of this run (advanced at log points)

    @property
    def epoch_fraction(self) -> float:
        """Passes over the data so far, with the fraction of the current one."""
        return self.epoch + self.batch_in_epoch / self.steps_per_epoch

    @property
    def at_epoch_end(self) -> bool:
        """Whether the step just taken finished an epoch (the position is then back at 0)."""
        return self.step > 0 and self.batch_in_epoch == 0

    def advance(self) -> None:
        """One iteration done; roll over into the next epoch at its end."""
        self.step += 1
        self.batch_in_epoch += 1
        if self.batch_in_epoch == self.steps_per_epoch:
            self.epoch += 1
            self.batch_in_epoch = 0

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "elapsed_s": self.elapsed,
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.elapsed = float(state.get("elapsed_s", 0.0))


@dataclass
class Flags:
    """What callbacks and signals ask of the loop; not saved."""

    stop_requested: bool = False  # Ctrl-C / SIGTERM / request_stop(): finish this iteration, save, return
    stop_agreed: bool = False  # with several processes: all of them saw a stop request at a log point
    failure: dict = field(default_factory=dict)  # set when the health monitor stopped the run
    nonfinite: bool = False  # the weights are not finite: never write them over a good checkpoint
    warnings: set[str] = field(default_factory=set)  # health conditions active now (shown on the progress bar)
