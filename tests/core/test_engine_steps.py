"""The step loop: gradient accumulation, clipping, bf16, fp16 with its loss scale, the numerics guard, frozen parameters,
and DDP equivalence."""
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core.config.sections import OptimizerConfig
from core.engine.distributed import largest
from core.engine.numerics import NonFiniteError, NumericsGuard, loss_scaler
from core.engine.steppers import StepRules
from core.engine.steps import train_epoch
from core.engine.optim import build_optimizer
from core.engine.stages import freeze
from core.tasks.catalog import build_task, task_config
from tests.core import spawned_ranks
from tests.core.task_batches import manifest_for, random_batch
from tests.core.tiny_task import TinyRegression, tiny_batches
from tests.ray_head import free_port

CPU = torch.device("cpu")


def _trained(batches, rules=StepRules(), lr=0.05, guard=None, seed=0, scaler=None):
    torch.manual_seed(seed)
    task = TinyRegression()
    model = task.build_model()
    optimizer = build_optimizer(OptimizerConfig(name="sgd", lr=lr, momentum=0.0, weight_decay=0.0), model.parameters())
    losses = []
    stats = train_epoch(model, optimizer, batches, task, CPU, rules=rules, guard=guard, scaler=scaler,
                        on_step=lambda t: losses.append(t.loss))
    return model, stats, losses


def _same_weights(a, b, tolerance=1e-6):
    return all(torch.allclose(x, y, atol=tolerance, rtol=0) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_accumulating_two_half_batches_is_one_step_on_the_whole_batch():
    whole = tiny_batches(4, 8)
    halves = [{k: v[i:i + 4] for k, v in b.items()} for b in whole for i in (0, 4)]
    big, big_stats, _ = _trained(whole)
    small, small_stats, _ = _trained(halves, StepRules(grad_accumulation=2))
    assert small_stats.steps == big_stats.steps == 4
    assert _same_weights(big, small)
    unaccumulated, _, _ = _trained(halves)
    assert not _same_weights(big, unaccumulated)


def test_a_short_last_accumulation_group_still_ends_in_a_step():
    _, stats, _ = _trained(tiny_batches(5, 4), StepRules(grad_accumulation=2))
    assert stats.steps == 3 and stats.samples == 20


def test_gradients_left_before_an_epoch_do_not_reach_its_first_step_and_none_outlive_it():
    clean, _, _ = _trained(tiny_batches(4, 8), StepRules(grad_accumulation=2))
    torch.manual_seed(0)
    task = TinyRegression()
    model = task.build_model()
    optimizer = build_optimizer(OptimizerConfig(name="sgd", lr=0.05, momentum=0.0, weight_decay=0.0), model.parameters())
    sum(p.sum() for p in model.parameters()).mul(1e3).backward()  # stale gradients, e.g. from a probe before training
    train_epoch(model, optimizer, tiny_batches(4, 8), task, CPU, rules=StepRules(grad_accumulation=2))
    assert _same_weights(clean, model)
    assert all(p.grad is None for p in model.parameters())  # evaluation after the epoch holds no gradient memory


def test_gradient_clipping_bounds_the_update():
    batches = tiny_batches(1, 8)
    torch.manual_seed(0)
    before = TinyRegression().build_model()
    clipped, _, _ = _trained(batches, StepRules(grad_clip=1e-3), lr=1.0)
    moved = torch.cat([(a - b).flatten() for a, b in zip(clipped.parameters(), before.parameters())])
    assert moved.norm().item() == pytest.approx(1e-3, rel=1e-3)  # one SGD step of lr 1 on a gradient clipped to norm 1e-3


def test_bf16_autocast_learns():
    batches = tiny_batches(8, 8)
    _, _, losses = _trained(batches * 4, StepRules(precision="bf16"))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) < 0.5 * sum(losses[:4])


def _loud(batches, factor=1000.0):
    """Targets so large that at fp16's starting loss scale (65536) the scaled gradients overflow fp16."""
    return [{"x": b["x"], "y": b["y"] * factor} for b in batches]


def test_fp16_autocast_with_its_loss_scale_learns():
    _, _, losses = _trained(tiny_batches(8, 8) * 4, StepRules(precision="fp16"))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) < 0.5 * sum(losses[:4])


def test_overflowing_fp16_steps_are_skipped_and_counted_and_halve_the_scale_until_it_fits():
    guard, scaler = NumericsGuard(0), loss_scaler(True, CPU)
    model, stats, losses = _trained(_loud(tiny_batches(8, 8)) * 4, StepRules(precision="fp16"), lr=1e-4, guard=guard,
                                    scaler=scaler)
    assert 0 < guard.overflows < stats.steps  # not mistaken for non-finite losses
    assert scaler.get_scale() == 65536 / 2**guard.overflows
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert sum(losses[-8:]) < 0.95 * sum(losses[:8])  # the same 8 batches: the first pass before any step was taken


def test_the_loss_scale_goes_on_from_its_saved_state_as_if_never_stopped():
    batches, rules = _loud(tiny_batches(12, 8)), StepRules(precision="fp16")

    def run(first_scaler, second_scaler):
        torch.manual_seed(0)
        task = TinyRegression()
        model = task.build_model()
        optimizer = build_optimizer(OptimizerConfig(name="sgd", lr=1e-7, momentum=0.0, weight_decay=0.0), model.parameters())
        train_epoch(model, optimizer, batches[:6], task, CPU, rules=rules, scaler=first_scaler)
        train_epoch(model, optimizer, batches[6:], task, CPU, rules=rules, scaler=second_scaler(first_scaler))
        return model

    uninterrupted = run(loss_scaler(True, CPU), lambda first: first)
    resumed = run(loss_scaler(True, CPU), lambda first: loss_scaler(True, CPU, first.state_dict()))
    restarted_scale = run(loss_scaler(True, CPU), lambda first: loss_scaler(True, CPU))
    assert _same_weights(uninterrupted, resumed, tolerance=0)
    assert not _same_weights(uninterrupted, restarted_scale)


EVERY_TASK = pytest.mark.parametrize(
    "task_values", [{"name": "segmentation"}, {"name": "depth_completion"},
                    {"name": "mesh_reconstruction", "mesh": {"grid": [6, 6], "hidden": 8}}], ids=lambda config: config["name"])


def _batch_for_every_task() -> dict[str, torch.Tensor]:
    batch = random_batch(n=2, size=32)
    batch["intrinsics"] = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]).expand(2, 3, 3).reshape(2, 9)
    return batch


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@EVERY_TASK
def test_every_task_trains_under_autocast(task_values, precision):
    task = build_task(task_config(**task_values), manifest_for())
    torch.manual_seed(0)
    model = task.build_model()
    before = [p.detach().clone() for p in model.parameters()]
    batch = _batch_for_every_task()
    optimizer = build_optimizer(OptimizerConfig(), model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=1.0, enabled=precision == "fp16")  # overflows are tested above
    guard = NumericsGuard(0)
    stats = train_epoch(model, optimizer, [batch] * 2, task, CPU, rules=StepRules(precision=precision), guard=guard,
                        scaler=scaler)
    assert all(torch.isfinite(torch.tensor(value)) for value in stats.losses.values())
    assert guard.overflows < 2  # at least one of the two steps was taken
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@EVERY_TASK
def test_every_tasks_images_reach_the_model_contiguous_channels_first(task_values):
    """Batches arrive (B, H, W, C); a permuted view would make the convolutions run channels-last against
    channels-first weights (slower, and DDP copies each weight gradient into its bucket: ImageInputs.rgb)."""
    task = build_task(task_config(**task_values), manifest_for())
    inputs, _ = task.split_batch(_batch_for_every_task(), CPU)
    named = inputs.items() if isinstance(inputs, dict) else [("input", inputs)]
    contiguous = {name: tensor.is_contiguous() for name, tensor in named if tensor.dim() == 4}
    assert contiguous and contiguous == dict.fromkeys(contiguous, True)


class _NanGradient(torch.nn.Module):
    """Finite outputs whose gradient is NaN: sqrt's derivative at 0 is infinite, times the 0 in front."""

    def __init__(self, model):
        super().__init__()
        self.model, self.zero = model, torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.model(x) + 0.0 * self.zero.sqrt()


def test_fp16_stops_when_gradients_overflow_at_every_scale_down_to_the_floor():
    task = TinyRegression()
    model = _NanGradient(task.build_model())
    optimizer = build_optimizer(OptimizerConfig(), model.parameters())
    guard = NumericsGuard(allowed=0, stage="head")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**-12)  # the floor, 1e-4, lies between 2**-14 and 2**-13
    with pytest.raises(NonFiniteError, match=r"non-finite gradient \(every loss term finite\) at step 3 of epoch 1 in "
                                             r"stage 'head' at fp16 loss scale 6.10352e-05, below 0.0001"):
        train_epoch(model, optimizer, tiny_batches(6, 4), task, CPU, rules=StepRules(precision="fp16"), guard=guard, scaler=scaler)
    assert guard.overflows == 2 and guard.skipped == 0


class _PoisonAt(torch.nn.Module):
    """The wrapped model's output becomes NaN on the given forward calls."""

    def __init__(self, model, calls):
        super().__init__()
        self.model, self.calls, self.count = model, set(calls), 0

    def forward(self, x):
        self.count += 1
        out = self.model(x)
        return out * float("nan") if self.count in self.calls else out


def test_guard_stops_at_a_nan_naming_the_step_the_stage_and_the_loss_terms():
    task = TinyRegression({"mse": 1.0})
    model = _PoisonAt(task.build_model(), calls=[3])
    optimizer = build_optimizer(OptimizerConfig(), model.parameters())
    guard = NumericsGuard(allowed=0, stage="head", epoch=4)
    with pytest.raises(NonFiniteError, match=r"non-finite loss term\(s\) mse at step 3 of epoch 5 in stage 'head'"):
        train_epoch(model, optimizer, tiny_batches(4, 4), task, CPU, guard=guard)


def test_guard_skips_up_to_the_allowed_steps_and_counts_them():
    task = TinyRegression()
    model = _PoisonAt(task.build_model(), calls=[2, 4])
    optimizer = build_optimizer(OptimizerConfig(), model.parameters())
    guard = NumericsGuard(allowed=2)
    stats = train_epoch(model, optimizer, tiny_batches(6, 4), task, CPU, guard=guard)
    assert guard.skipped == 2 and stats.steps == 6
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(NonFiniteError, match="2 of train.skip_nonfinite_steps=2 steps skipped before"):
        model.count = 0
        train_epoch(model, optimizer, tiny_batches(3, 4), task, CPU, guard=guard)


def test_frozen_parameters_and_their_norm_statistics_stay_bit_identical():
    task = build_task(task_config(), manifest_for())
    model = task.build_model()
    frozen = freeze(model, ("encoder.*",))
    assert frozen and all(name.startswith("encoder.") for name in frozen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(OptimizerConfig(weight_decay=0.1), [p for p in model.parameters() if p.requires_grad])
    train_epoch(model, optimizer, [random_batch(4), random_batch(4)], task, CPU)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))


def test_a_freeze_pattern_that_matches_nothing_is_an_error_naming_the_modules():
    model = build_task(task_config(), manifest_for()).build_model()
    with pytest.raises(ValueError, match=r"'backbone\.\*' matches no parameter .*'decoder', 'encoder', 'segmentation_head'"):
        freeze(model, ("backbone.*",))


def _ddp_worker(rank: int, port: int, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    task = TinyRegression()
    model = torch.nn.parallel.DistributedDataParallel(task.build_model())
    optimizer = build_optimizer(OptimizerConfig(lr=0.01), model.parameters())
    mine = [{k: v[rank * 4:(rank + 1) * 4] for k, v in b.items()} for b in tiny_batches(6, 8)]
    losses = []
    train_epoch(model, optimizer, mine, task, CPU, on_step=lambda t: losses.append(t.loss))
    torch.save({"losses": losses, "weights": model.module.state_dict(), "largest": largest(rank + 0.5, CPU)},
               f"{out}/rank{rank}.pt")
    spawned_ranks.leave()


def test_two_ddp_workers_with_batch_b_match_one_worker_with_batch_2b_step_by_step():
    torch.manual_seed(0)
    task = TinyRegression()
    model = task.build_model()
    optimizer = build_optimizer(OptimizerConfig(lr=0.01), model.parameters())
    single = []
    train_epoch(model, optimizer, tiny_batches(6, 8), task, CPU, on_step=lambda t: single.append(t.loss))
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_ddp_worker, args=(free_port(), out), nprocs=2)
        ranks = [torch.load(f"{out}/rank{r}.pt") for r in (0, 1)]
    pairs = list(zip(*(r["losses"] for r in ranks)))
    assert len(pairs) == len(single) == 6
    assert [sum(p) / 2 for p in pairs] == pytest.approx(single, rel=1e-5)  # each worker's mean loss over half the batch
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ranks[0]["weights"].values(), model.state_dict().values()))
    assert [r["largest"] for r in ranks] == [1.5, 1.5]  # what the run reports as every worker's figure, e.g. peak memory
