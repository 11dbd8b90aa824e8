"""A run's settings resolved from the options: sizes, batch, data sources, the held-out split,
run length, periods, precision, seed (:class:`Plan`, written to ``config.json``)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from pathlib import Path

from ..data import load_source
from ..errors import UsageError
from ..models.registry import get_model_config
from . import backend
from .config import Recipe


@dataclasses.dataclass
class Plan:
    """A run's resolved settings (``config.json`` records them)."""

    model: str
    variant: str | None
    data: str
    data_dir: str | None
    model_dir: Path
    recipe: Recipe
    source: object
    validation: object  # the held-out Source, or None
    image_size: int
    global_batch: int
    steps_per_epoch: int
    total_steps: int
    period: int
    validate_every: int
    log_every: int
    precision: str  # float32, bfloat16 or float16 (mixed precision)
    policy: str  # its Keras mixed-precision policy
    aux: bool
    seed: int
    deterministic: bool
    eval_split: str | None
    train_map: object = None  # (images, labels) -> training batch: augmentation, weights

    def record(self, rt: backend.Runtime) -> dict:
        return {
            "model": self.model, "variant": self.variant, "data": self.data,
            "data_dir": self.data_dir, "num_examples": self.source.num_examples,
            "skipped_files": self.source.skipped, "num_classes": self.source.num_classes,
            "class_names": self.source.class_names, "image_size": self.image_size,
            "global_batch_size": self.global_batch, "backend": rt.backend,
            "strategy": rt.strategy, "replicas": rt.replicas, "devices": rt.devices,
            "precision": self.precision, "aux_logits": self.aux,
            "learning_rate": self.recipe.learning_rate(self.global_batch),
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
            "checkpoint_every": self.period, "validate_every": self.validate_every,
            "validation_split": "validation" if self.validation is not None else None,
            "eval_split": self.eval_split, "eval_held_out": self.eval_held_out,
            "seed": self.seed, "deterministic": self.deterministic,
            "recipe": dataclasses.asdict(self.recipe),
        }  # fmt: skip

    def summary(self, rt: backend.Runtime) -> str:
        return (
            f"{self.model} on {self.source.num_examples} images of {self.source.num_classes} "
            f"classes: {self.total_steps} steps of {self.global_batch} images at "
            f"{self.image_size}x{self.image_size}, {self.policy}, {rt.backend} "
            f"({rt.strategy}, {rt.replicas} replica{'s' if rt.replicas > 1 else ''})"
        )

    @property
    def eval_held_out(self) -> bool | None:
        if self.eval_split is None:
            return None
        return self.eval_split != "train"


def _resolve(model_name, data, image_size, batch_size, num_replicas, recipe):
    config = get_model_config(model_name)
    size = int(image_size or config.input_size)
    if size < config.min_input_size:
        raise UsageError(
            f"--image-size {size} is too small for {model_name}; it needs at least "
            f"{config.min_input_size}."
        )
    global_batch = int(batch_size if batch_size is not None else recipe.batch_size * num_replicas)
    if global_batch <= 0:
        raise UsageError(f"--batch-size must be positive, got {global_batch}.")
    if global_batch % num_replicas:
        raise UsageError(
            f"--batch-size {global_batch} is not divisible by the {num_replicas} replicas; use a "
            f"multiple of {num_replicas} (the global batch is split evenly over replicas)."
        )
    return size, global_batch


def notice(text: str, verbose: int, prog: str | None = None) -> None:
    """One line on stderr, ``inception train: note: ...`` (``prog``: another command's name;
    default: the command that is running, ``inception finetune`` while one fine-tunes)."""
    if verbose:
        print(f"{prog or NOTICE_PROG[-1]}: note: {text}", file=sys.stderr, flush=True)


NOTICE_PROG = ["inception train"]  # the running command, innermost last


@contextlib.contextmanager
def notices_of(prog: str):
    """Notes printed inside the block are ``prog``'s (``inception finetune``)."""
    NOTICE_PROG.append(prog)
    try:
        yield
    finally:
        NOTICE_PROG.pop()


def _load(data, split, data_dir):
    try:
        return load_source(data, split, data_dir=data_dir), None
    except UsageError as exc:
        return None, exc


def _held_out(data, data_dir, eval_split, verbose, train=None):
    """The validation source (``None`` if the data holds none out) and the split the final
    evaluation uses: a folder without a sub-folder for it is evaluated on its training images,
    and says so in one line; a tfds data set without the split is not evaluated. With the
    ``train`` source, an evaluation split with a class training lacks is refused now."""
    validation, missing = _load(data, "validation", data_dir)
    if validation is not None and validation.whole_folder:
        validation = None
    if eval_split not in (None, "train"):
        source, error = (validation, None) if eval_split == "validation" and validation else (
            _load(data, eval_split, data_dir))  # fmt: skip
        periodic = "" if validation is not None else "no periodic validation, and "
        if error is not None:
            notice(f"no {eval_split} split ({error}): {periodic}no final evaluation.", verbose)
            return validation, None
        if train is not None and source is not validation:
            _match_classes(train, source, eval_split)
        if source.whole_folder:
            notice(
                f"{data} has no {eval_split}/ sub-folder: {periodic}the final evaluation uses "
                'the TRAINING images ("split": "train" in eval.json).',
                verbose,
            )
            return validation, "train"
    if validation is None and missing is not None:
        notice(f"no validation split ({missing}); no periodic validation.", verbose)
    return validation, eval_split


def _check_classes(source) -> None:
    """A classifier needs two classes at least; refused before anything is built."""
    if source.num_classes < 2:
        only = f" ({source.class_names[0]})" if source.class_names else ""
        raise UsageError(
            f"{source.name} has only one class{only} to train on; a classifier needs at least "
            "two: put the images of each class in a sub-folder of their own."
        )


def _match_classes(source, held_out, split: str):
    """``held_out`` labelled by the TRAINING classes, matched by name (a subset of them is
    fine); a class the training data lacks is refused before the first step."""
    if held_out is None:
        return None
    known = set(source.class_names)
    unknown = [name for name in held_out.class_names if name not in known]
    if unknown:
        shown = ", ".join(unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        them = "them" if len(unknown) > 1 else "it"
        raise UsageError(
            f"the {split} data of {held_out.name} has class(es) that the training data lacks "
            f"({shown}): the model only learns the {source.num_classes} training classes, so "
            f"add training images of {them} (a train/ class folder of the same name) or remove "
            f"{them} from the {split} data."
        )
    return held_out.relabelled(source.class_names)


def make_plan(model, data, model_dir, recipe, rt, opts) -> Plan:
    size, global_batch = _resolve(
        model, data, opts["image_size"], opts["batch_size"], rt.replicas, recipe
    )
    source = load_source(data, "train", data_dir=opts["data_dir"])
    _check_classes(source)
    validation, eval_split = _held_out(
        data, opts["data_dir"], opts["eval_split"], opts["verbose"], source
    )
    validation = _match_classes(source, validation, "validation")
    steps_per_epoch = max(1, source.num_examples // global_batch)
    steps, epochs = opts["steps"], opts["epochs"]
    total = int(steps) if steps is not None else math.ceil(float(epochs) * steps_per_epoch)
    if total <= 0:
        raise UsageError("the run must have at least one step (--steps or --epochs too small).")
    period = opts["checkpoint_every"]
    period = int(period if period is not None else recipe.checkpoint_every_steps)
    if period <= 0:
        raise UsageError(f"--checkpoint-every must be positive, got {period}.")
    every = opts["validate_every"]
    if every is None:
        every = recipe.validate_every_steps or steps_per_epoch
    validate_every = max(1, round(every / period)) * period if every > 0 else 0
    precision = backend.resolve_precision(opts["precision"], rt)
    seed = opts["seed"]
    if seed is None:
        seed = 0 if opts["deterministic"] else int.from_bytes(os.urandom(3), "little")
    return Plan(
        model=model, variant=opts["variant"], data=str(data), data_dir=opts["data_dir"],
        model_dir=Path(model_dir).expanduser(), recipe=recipe, source=source,
        validation=validation, image_size=size, global_batch=global_batch,
        steps_per_epoch=steps_per_epoch, total_steps=total, period=period,
        validate_every=validate_every if validation is not None else 0,
        log_every=max(1, int(opts["log_every"] or 1)),
        precision=precision, policy=backend.keras_policy(precision),
        aux=recipe.aux_logits and size >= 107, seed=seed,
        deterministic=opts["deterministic"], eval_split=eval_split,
    )  # fmt: skip
