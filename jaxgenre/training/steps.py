"""Training as pure functions: the train state pytree, the optimiser, and the jitted
train / predict steps over a device mesh.

    state = create_train_state(key, model, tx, sample_input)   # or from ported weights
    steps = compile_steps(model, tx, adapt, mesh)
    state, metrics = steps.train(state, batch)                  # batch sharded on 'data'
    probabilities = steps.predict(state, batch)

The state is replicated over the mesh and the batch split along 'data', so one step
on 8 devices computes exactly what one step on 1 device computes for the same global
batch (tested). Randomness (dropout, stochastic depth) comes from `fold_in(state.rng,
state.step)`: a pure function of the seed and the optimiser step, so a resumed run
continues with the same keys.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Dict, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxgenre.training import augment as augment_lib
from jaxgenre import parallel
from jaxgenre.training import weight_average
from jaxgenre.errors import UserError

Batch = Dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array  # fixed; step keys are fold_in(rng, step)


def decay_mask(params) -> Any:
    """True for the leaves weight decay applies to: kernels (2 or more dimensions); not
    biases nor BatchNorm's scale and offset (1-D), which decay would only pull towards 0."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "warmup_cosine")


def create_optimizer(optim, total_steps: int, *, head: Tuple[str, ...] = (),
                     freeze_backbone: bool = False) -> optax.GradientTransformation:
    """`config.optim` → optax: adam (adamw when weight_decay > 0) / adamw / sgd (momentum
    0.9), with a 'constant', 'cosine' or 'warmup_cosine' learning rate (a linear warm-up
    over `optim.warmup_fraction` of the steps, default 5%, then cosine decay to 0). Weight
    decay skips biases and BatchNorm parameters (`decay_mask`). `optim.ema_decay` > 0
    chains a moving average of the weights (`weight_average`), which evaluation uses.

    `head` names the model's top-level parameter groups that are its head (the model
    spec's); the others are its backbone, whose updates are scaled by
    `optim.backbone_lr_scale` (1: as the head's, the plain optimiser) and set to zero
    when `freeze_backbone` (weight decay included: frozen weights do not move)."""
    lr = optim.learning_rate
    total_steps = max(int(total_steps), 1)
    warmup = max(1, int(total_steps * optim.warmup_fraction))
    schedules = {
        "constant": lambda: lr,
        "cosine": lambda: optax.cosine_decay_schedule(lr, total_steps),
        "warmup_cosine": lambda: optax.warmup_cosine_decay_schedule(
            0.0, lr, min(warmup, total_steps - 1) if total_steps > 1 else 0, total_steps),
    }
    assert tuple(schedules) == SCHEDULES  # validation checks the config against these
    if optim.schedule not in schedules:
        raise UserError(f"config.optim.schedule must be one of {', '.join(SCHEDULES)}; "
                        f"got {optim.schedule!r}")
    schedule = schedules[optim.schedule]()
    if optim.name in ("adam", "adamw"):
        if optim.weight_decay or optim.name == "adamw":
            tx = optax.adamw(schedule, weight_decay=optim.weight_decay, mask=decay_mask)
        else:
            tx = optax.adam(schedule)
    elif optim.name == "sgd":
        tx = optax.chain(optax.masked(optax.add_decayed_weights(optim.weight_decay),
                                      decay_mask),
                         optax.sgd(schedule, momentum=0.9))
    else:
        raise UserError(f"config.optim.name must be one of {', '.join(OPTIMIZERS)}; "
                        f"got {optim.name!r}")
    tx = _backbone_apart(tx, head, 0.0 if freeze_backbone else optim.backbone_lr_scale)
    ema_decay = optim.ema_decay
    return optax.chain(tx, weight_average.params_ema(ema_decay)) if ema_decay else tx


def _backbone_apart(tx: optax.GradientTransformation, head: Tuple[str, ...],
                    scale: float) -> optax.GradientTransformation:
    """`tx` for the head; for the backbone `tx` with its updates times `scale`, or no
    update at all when `scale` is 0. `scale` 1: `tx` itself (the same state as before
    this option, so older runs resume)."""
    if scale == 1.0:
        return tx
    if not head:
        raise UserError("config.optim.backbone_lr_scale and config.model.freeze_backbone "
                        "need a model whose spec names its head; this one names none")
    backbone = optax.set_to_zero() if scale == 0.0 else optax.chain(tx, optax.scale(scale))
    label = lambda params: {name: "head" if name in head else "backbone" for name in params}
    return optax.multi_transform({"head": tx, "backbone": backbone}, label)


@functools.lru_cache(maxsize=32)
def _cached_init(model) -> Callable:
    return jax.jit(functools.partial(model.init, train=False))


def jitted_init(model) -> Callable:
    """`model.init` (inference mode) jitted once per model: flax modules built with the
    same fields are equal, so the seeds of a run, its folds and the predictor reuse one
    executable for a given input shape, where a fresh `jax.jit` compiled it each time
    (7-9 s for the small CNN on a 2-core CPU). A model that cannot be hashed (a list
    among its fields) is jitted afresh."""
    try:
        return _cached_init(model)
    except TypeError:  # unhashable
        return jax.jit(functools.partial(model.init, train=False))


def create_train_state(key: jax.Array, model, tx: optax.GradientTransformation,
                       sample_input: jax.Array, variables: Dict = None) -> TrainState:
    """A fresh state: `variables` (e.g. ported ImageNet weights) or `model.init`."""
    init_key, step_key = jax.random.split(key)
    if variables is None:
        variables = jitted_init(model)(init_key, sample_input)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(params), rng=step_key)


def train_step(state: TrainState, batch: Batch, *, model, tx, adapt: Callable,
               augmentation: augment_lib.Augmentation = augment_lib.Augmentation()
               ) -> Tuple[TrainState, Dict[str, jax.Array]]:
    """One optimiser step on the batch's masked mean cross-entropy, after the batch's
    augmentation (`augment.augment_batch`; none by default). With mixup or label
    smoothing the targets are class distributions; otherwise integer labels."""
    key = jax.random.fold_in(state.rng, state.step)
    aug_key = jax.random.fold_in(key, augment_lib.AUGMENT_STREAM)
    labels, mask = batch["labels"], batch["mask"]
    inputs, targets = augment_lib.augment_batch(augmentation, aug_key, batch["inputs"], labels,
                                                num_classes=model.num_classes, adapt=adapt)
    cross_entropy = (optax.softmax_cross_entropy if augmentation.soft_targets
                     else optax.softmax_cross_entropy_with_integer_labels)

    def loss_fn(params):
        logits, updated = model.apply({"params": params, "batch_stats": state.batch_stats},
                                      inputs, train=True, rngs={"dropout": key},
                                      mutable=["batch_stats"])
        losses = cross_entropy(logits, targets)
        loss = jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0)
        return loss, (logits, updated["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          batch_stats=batch_stats, opt_state=opt_state)
    correct = jnp.sum((jnp.argmax(logits, -1) == labels) * mask)
    return state, {"loss": loss, "correct": correct, "count": jnp.sum(mask)}


def predict_step(state: TrainState, batch: Batch, *, model, adapt: Callable) -> jax.Array:
    """Class probabilities (batch, classes), float32, BatchNorm on running statistics;
    with the weights' moving average when the optimiser keeps one (`optim.ema_decay`)."""
    params = weight_average.evaluation_params(state.params, state.opt_state)
    logits = model.apply({"params": params, "batch_stats": state.batch_stats},
                         adapt(batch["inputs"]), train=False)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


@dataclasses.dataclass(frozen=True)
class Steps:
    train: Callable[[TrainState, Batch], Tuple[TrainState, Dict[str, jax.Array]]]
    predict: Callable[[TrainState, Batch], jax.Array]


def compile_steps(model, tx: Optional[optax.GradientTransformation], adapt: Callable,
                  mesh: Mesh, augmentation: augment_lib.Augmentation = augment_lib.Augmentation()
                  ) -> Steps:
    """The steps jitted over `mesh`: state replicated (and donated), batch on 'data'.
    Without `tx` (prediction only) `train` is None. `augmentation` acts in training only."""
    state_sharding, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    train = None if tx is None else jax.jit(
        functools.partial(train_step, model=model, tx=tx, adapt=adapt,
                          augmentation=augmentation),
        in_shardings=(state_sharding, data), out_shardings=(state_sharding, state_sharding),
        donate_argnums=0)
    predict = jax.jit(functools.partial(predict_step, model=model, adapt=adapt),
                      in_shardings=(state_sharding, data), out_shardings=data)
    return Steps(train=train, predict=predict)
