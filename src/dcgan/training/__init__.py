"""Training: the config, the GAN step, the data feed, the typed state, the loop and its callbacks.

config.py     TrainConfig: every option with its help, values and resume rule
step.py       GANStep: G, D, their optimizers and autocast; step(batch) -> figures
feed.py       DataFeed: the (seed, epoch) data order, batches of (images, labels)
state.py      TrainState (step, epoch, position, elapsed) and the loop's Flags
loop.py       Trainer: the loop, checkpoints, construction from options or a run
resolve.py    resolve_options: the options of a new run, defaults < recipe < config file < given
              (digits: 25 epochs, others 1), for Trainer.from_options and dcgan train alike
callbacks.py  Callback and the bookkeeping ones: metrics log, progress bar, samples, checkpoints, pictures
monitors.py   the judging callbacks: training health (warn/stop/rollback) and the --eval-every FID
"""

from ..rundir import read_metrics
from .callbacks import Action, Callback, Schedule
from .config import TrainConfig
from .feed import DataFeed
from .loop import Trainer, TrainResult, default_callbacks, resolve_device
from .resolve import resolve_options
from .state import TrainState
from .step import GANStep, cpu_has_bf16

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "TrainState",
    "GANStep",
    "DataFeed",
    "Callback",
    "Action",
    "Schedule",
    "default_callbacks",
    "resolve_device",
    "resolve_options",
    "read_metrics",
    "cpu_has_bf16",
]
