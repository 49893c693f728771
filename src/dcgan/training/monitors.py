"""The two callbacks that judge the run: training health (warn, stop or roll back) and the --eval-every metric
(FID, or for a class-conditional model intra-FID or conditional accuracy: --eval-metric)."""

from __future__ import annotations

from ..data import default_cache_dir
from ..errors import ConfigError
from ..metrics.evaluate import TrackedMetric, check_classes, class_reference_features, per_class_count, reference_features
from ..metrics.extractors import build_extractor, load_dataset_classifier, resolve_features
from ..metrics.scores import METRICS
from ..sampling import generate
from . import distributed
from .callbacks import Action, Callback, Schedule
from .config import AUTO_EVAL_EVERY
from .health import HealthIssue, HealthMonitor

__all__ = ["Health", "Evaluate", "describe_best"]

_ACTION_WORDS = {"warn": "training goes on", "stop": "stopping", "rollback": "rolling back to the last checkpoint"}


class Health(Callback):
    """Runs the health monitor on each log window (--on-failure warn | stop | rollback).

    With several processes rank 0 decides for all (a broadcast), so that they stop together.
    A rollback restores the last checkpoint, then continues with a fresh noise stream and,
    with --rollback-lr-factor, lower learning rates.
    """

    name = "health"

    def __init__(self) -> None:
        self.monitor = HealthMonitor()
        self.rollbacks = 0  # rollbacks so far in this run
        self.events: list[dict] = []  # every condition found this session, with the step and the action taken

    def on_train_start(self, trainer):
        if trainer.config.on_failure != "rollback":
            return
        if trainer.dist.enabled:
            raise ConfigError("--on-failure rollback is not available with several processes; use warn or stop")
        if trainer.run is None:
            raise ConfigError("--on-failure rollback needs a run directory to keep the checkpoint it rolls back to")
        if not trainer.run.latest.exists():
            trainer.save()  # the state to return to if the very first stretch fails

    def on_log(self, trainer, record):
        action = self._verdict(trainer, record)
        if trainer.dist.enabled:  # rank 0 decides for all, so that they stop together
            action, trainer.flags.failure = distributed.broadcast_from_main((action, trainer.flags.failure), trainer.dist)
        if action == "stop":
            return Action.STOP
        if action == "rollback":
            self._rollback(trainer)
            return Action.ROLLBACK
        return None

    def _verdict(self, trainer, record: dict) -> str | None:
        """None (healthy, or warn), "stop" or "rollback".

        Advisory issues (d_winning) are reported once at their onset as a warning whatever the mode,
        and never stop or roll back the run; the others follow --on-failure."""
        samples = generate(trainer.G, trainer.fixed_noise, trainer.fixed_labels) if trainer.fixed_noise.shape[0] >= 2 else None
        found = self.monitor.check(record, [trainer.G, trainer.D], samples, trainer.state.step)
        flags = trainer.flags
        flags.nonfinite = any(i.condition == "nonfinite" for i in found)
        onset = [i for i in found if i.condition not in flags.warnings]
        flags.warnings = {i.condition for i in found}
        for issue in onset:
            if issue.advisory:
                self._report(trainer, issue, "warn")
        issues = [i for i in found if not i.advisory]
        onset = [i for i in onset if not i.advisory]
        if not issues:
            return None
        mode = trainer.config.on_failure
        action = "stop" if mode == "rollback" and self.rollbacks >= trainer.config.max_rollbacks else mode
        for issue in onset if mode == "warn" else issues:
            self._report(trainer, issue, action)
        if action == "warn":
            return None
        if action == "stop":
            issue = issues[0]
            flags.failure = {
                "condition": issue.condition,
                "message": issue.message,
                "hint": issue.hint,
                "step": trainer.state.step,
                "rollbacks": self.rollbacks,
            }
        return action

    def _report(self, trainer, issue: HealthIssue, action: str) -> None:
        step = trainer.state.step
        event = {"step": step, "health": issue.condition, "message": issue.message, "hint": issue.hint, "action": action}
        self.events.append(event)
        trainer.say(f"step {step}: {issue.message}; {_ACTION_WORDS[action]}. Hint: {issue.hint}")
        trainer.emit(event)

    def _rollback(self, trainer) -> None:
        """Restore the last checkpoint, then continue with a fresh noise stream (and lower learning rates)."""
        failed_step, rollbacks, best_diversity = trainer.state.step, self.rollbacks + 1, self.monitor.best_diversity
        trainer.load_checkpoint(trainer.run.latest)  # every callback, this one included, gets its saved state back
        self.rollbacks = rollbacks
        self.monitor = HealthMonitor(self.monitor.config, best_diversity=best_diversity)
        trainer.flags.warnings, trainer.flags.nonfinite = set(), False
        # A different noise stream, so the run does not walk into the same failure again.
        trainer.gan.noise_gen.manual_seed(trainer.config.seed + 7919 * self.rollbacks)
        # Learning rates of the n-th rollback: the configured ones times factor^n, whatever the checkpoint held.
        trainer.gan.scale_learning_rates(trainer.config.rollback_lr_factor**self.rollbacks)
        trainer.run.truncate_metrics(trainer.state.step, keep_health=True)  # they belong to the abandoned stretch
        note = f"rolled back from step {failed_step} to step {trainer.state.step} (rollback {self.rollbacks} of {trainer.config.max_rollbacks})"
        self.events.append({"step": trainer.state.step, "health": "rollback", "message": note, "action": "rollback"})

    def summary(self) -> dict:
        return {"rollbacks": self.rollbacks}

    def state_dict(self) -> dict:
        return {"monitor": self.monitor.state_dict(), "rollbacks": self.rollbacks}

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state.get("monitor") or {})
        self.rollbacks = int(state.get("rollbacks", 0))


class Evaluate(Callback):
    """--eval-every: the tracked metric (--eval-metric: FID by default) of the fixed evaluation noise
    against cached real features; the best evaluation (lowest FID or intra-FID, highest conditional
    accuracy) is kept as checkpoints/best.safetensors. Runs on rank 0 alone."""

    name = "eval"

    def __init__(self, every: int | None) -> None:
        # None (auto): every AUTO_EVAL_EVERY iterations, in runs that long (on_train_start decides); 0: off
        self.auto = every is None
        self.schedule = Schedule(every or AUTO_EVAL_EVERY, at_last_step=True)
        self.enabled = every != 0
        self.tracked: TrackedMetric | None = None  # the TrackedMetric, built before training (a missing classifier is reported then)
        # The best evaluation so far: {"fid": value, "step": step} when FID is tracked (the layout checkpoints
        # always had); otherwise {"metric": name, name: value, "fid": FID at that step, "step": step}.
        self.best: dict = {}

    def prepare(self, trainer):
        """Build the tracked metric now (on rank 0); returns it, or None when evaluation is off."""
        if self.auto and trainer.total_steps() < AUTO_EVAL_EVERY:
            self.enabled = False  # a short run (a demo, a test) has no best point worth the scoring
        if self.enabled and self.tracked is None and trainer.dist.is_main:
            self.tracked = build_tracked_metric(trainer)
        return self.tracked

    def on_train_start(self, trainer):
        self.prepare(trainer)

    def _improves(self, tracked: TrackedMetric, value: float) -> bool:
        key = tracked.name
        if not self.best or self.best.get("metric", "fid") != key:
            return True  # none yet (or, defensively, a best of another metric)
        return value < self.best[key] if tracked.lower_is_better else value > self.best[key]

    def on_step_end(self, trainer):
        if self.tracked is None or not self.schedule.due(trainer):
            return
        state, key = trainer.state, self.tracked.name
        figures = self.tracked.figures(trainer.sampling_generator())  # {"fid", and the tracked figure with its per-class values}
        value, protocol = figures[key], self.tracked.protocol()
        record = {"step": state.step, "epoch": round(state.epoch_fraction, 4), **figures, "eval": protocol}
        if key != "fid":
            record["tracked"] = key
        trainer.emit(record)
        improved = self._improves(self.tracked, value)
        if improved:
            self.best = {"fid": value, "step": state.step} if key == "fid" else {"metric": key, key: value, "fid": figures["fid"], "step": state.step}
        now = describe_best({"metric": key, key: value, "fid": figures["fid"]}, with_step=False)
        trainer.say(f"step {state.step}: {now} ({protocol})" + (" - best so far" if improved else f"; best {describe_best(self.best)}"))
        if trainer.run is not None and improved:
            trainer.save(trainer.run.best)

    def summary(self) -> dict:
        return {"best": dict(self.best)}

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = dict(state.get("best") or {})


def describe_best(best: dict, with_step: bool = True) -> str:
    """A best (or any) evaluation in words: "FID 12.345 at step 400", or for another tracked metric
    "conditional accuracy 93.1% (FID 12.345) at step 400" (the words from its METRICS entry)."""
    key = best.get("metric", "fid")
    metric = METRICS.get(key)
    fid = best.get("fid")
    if key == "fid" or metric is None or not metric.tracked:
        text = METRICS["fid"].show(best["fid"])
    else:
        text = metric.show(best[key]) + (f" ({METRICS['fid'].show(fid)})" if isinstance(fid, float) else "")
    return text + (f" at step {best['step']}" if with_step and "step" in best else "")


def build_tracked_metric(trainer) -> TrackedMetric:
    """The tracker of --eval-every: extractor chosen by eval_features, real features cached; for a metric that
    needs them (intra-FID) also the real features of each class, for one that needs the evaluation classifier
    (conditional accuracy) that classifier, its classes checked."""
    cfg, data, mc = trainer.config, trainer.data, trainer.model_config
    metric, spec = cfg.eval_metric, METRICS[cfg.eval_metric]
    if spec.conditional and not mc.conditional:
        raise ConfigError(f"--eval-metric {metric} scores a class-conditional model: train with --conditional, or track fid")
    name, note = resolve_features(cfg.eval_features, data.name, cfg.evaluator)  # auto: as `dcgan evaluate` picks
    if note:
        trainer.say(note)
    device = str(trainer.device)
    extractor = build_extractor(name, dataset=data.name, evaluator=cfg.evaluator, device=device)
    cache = default_cache_dir() / "reference"
    real = reference_features(data, extractor, cfg.eval_samples, cache_dir=cache)
    classifier, by_class = None, None
    if spec.needs_classifier:
        classifier = extractor.classifier or load_dataset_classifier(data.name, cfg.evaluator, device)
        check_classes(mc.class_names, mc.num_classes, classifier=classifier)
    if spec.needs_class_references:
        check_classes(mc.class_names, mc.num_classes, real=data)
        by_class = class_reference_features(data, extractor, mc.num_classes, per_class_count(cfg.eval_samples, mc.num_classes), cache_dir=cache)
    return TrackedMetric(
        extractor, real, cfg.eval_samples, seed=cfg.seed + 2, metric=metric, classifier=classifier, real_by_class=by_class, class_names=mc.class_names
    )
