"""DeepSpeed ZeRO in the step loop: two workers on gloo match one process step by step, and a run saved as
per-worker shards and loaded into fresh engines goes on exactly as if it had never stopped; in fp16 it learns."""
import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core.config.schema import ExperimentConfig
from core.engine.steppers import StepRules
from core.engine.steps import train_epoch
from core.engine.optim import build_optimizer
from jobs._train.strategy import deepspeed_engine, deepspeed_runs_fp16, wrap
from tests.core import spawned_ranks
from tests.core.tiny_task import TinyRegression, tiny_batches
from tests.ray_head import free_port

CPU = torch.device("cpu")
CONFIG = {"train": {"batch_size": 4, "optimizer": {"lr": 0.01, "weight_decay": 0.0}}, "scaling": {"strategy": "deepspeed"}}


def _engine(zero_stage: int, precision: str = "fp32", accumulation: int = 1):
    torch.manual_seed(0)
    model = TinyRegression().build_model()
    config = ExperimentConfig.model_validate({"train": {**CONFIG["train"], "precision": precision, "grad_accumulation": accumulation},
                                              "scaling": {"strategy": "deepspeed", "zero_stage": zero_stage}})
    optimizer = build_optimizer(config.train.optimizer, model.parameters())
    return deepspeed_engine(model, optimizer, config), optimizer


def _train(engine, optimizer, batches, rank, rules=StepRules()) -> list[float]:
    mine = [{k: v[rank * 4:(rank + 1) * 4] for k, v in b.items()} for b in batches]
    losses = []
    train_epoch(engine, optimizer, mine, TinyRegression(), CPU, rules=rules, on_step=lambda t: losses.append(t.loss))
    return losses


def _worker(rank: int, port: int, out: str, zero_stage: int):
    from core.engine.model_state import full_weights, load_shards, save_shards

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    batches = tiny_batches(6, 8)
    engine, optimizer = _engine(zero_stage)
    losses = _train(engine, optimizer, batches, rank)
    uninterrupted = full_weights(engine)

    first, first_optimizer = _engine(zero_stage)
    _train(first, first_optimizer, batches[:3], rank)
    save_shards(first, Path(out))
    second, second_optimizer = _engine(zero_stage)  # fresh weights and optimizer: everything must come from the shards
    load_shards(second, Path(out))
    _train(second, second_optimizer, batches[3:], rank)
    torch.save({"losses": losses, "uninterrupted": uninterrupted, "resumed": full_weights(second)}, f"{out}/rank{rank}.pt")
    spawned_ranks.leave()


@pytest.mark.parametrize("zero_stage", [2, 3])  # ZeRO 1 shares DeepSpeed's code path with 2 (stage_1_and_2)
def test_zero_matches_one_process_step_by_step_and_resumes_from_every_workers_shard(zero_stage, tmp_path, monkeypatch):
    built = tmp_path / "torch_extensions"  # where DeepSpeed would compile its C++ ops for the workers
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(built))
    torch.manual_seed(0)
    task = TinyRegression()
    model = task.build_model()
    optimizer = build_optimizer(ExperimentConfig.model_validate(CONFIG).train.optimizer, model.parameters())
    single = []
    train_epoch(model, optimizer, tiny_batches(6, 8), task, CPU, on_step=lambda t: single.append(t.loss))
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(free_port(), out, zero_stage), nprocs=2)
        shards = sorted(p.name for p in Path(out, "deepspeed", "state").iterdir())
        ranks = [torch.load(f"{out}/rank{r}.pt") for r in (0, 1)]
    assert [name for name in shards if "optim_states" in name] == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    means = [sum(pair) / 2 for pair in zip(*(r["losses"] for r in ranks))]
    assert means == pytest.approx(single, rel=1e-5)
    expected = model.state_dict()
    assert all(torch.allclose(ranks[0]["uninterrupted"][k], expected[k], atol=1e-6) for k in expected)
    for rank in ranks:
        assert all(torch.equal(rank["resumed"][k], rank["uninterrupted"][k]) for k in expected)
    assert not built.exists(), f"DeepSpeed compiled {[p.name for p in built.rglob('*.so')]} to train"


def _accumulating_worker(rank: int, port: int, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from core.engine.model_state import full_weights

    engine, optimizer = _engine(2, accumulation=2)
    for _ in range(2):  # a second epoch: what the first left unstepped would be carried into it
        _train(engine, optimizer, tiny_batches(5, 8), rank, StepRules(grad_accumulation=2))
    torch.save(full_weights(engine), f"{out}/rank{rank}.pt")
    spawned_ranks.leave()


def test_zero2_with_accumulation_steps_a_short_last_group_as_one_process_does():
    """5 batches in groups of 2: the fifth is a group of its own, stepped at the end of each epoch."""
    torch.manual_seed(0)
    task = TinyRegression()
    model = task.build_model()
    optimizer = build_optimizer(ExperimentConfig.model_validate(CONFIG).train.optimizer, model.parameters())
    for _ in range(2):
        train_epoch(model, optimizer, tiny_batches(5, 8), task, CPU, rules=StepRules(grad_accumulation=2))
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_accumulating_worker, args=(free_port(), out), nprocs=2)
        ranks = [torch.load(f"{out}/rank{r}.pt") for r in (0, 1)]
    expected = model.state_dict()
    for rank in ranks:
        assert all(torch.allclose(rank[k], expected[k], atol=1e-6) for k in expected)


def _fp16_worker(rank: int, port: int, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    engine, optimizer = _engine(2, "fp16")
    losses = _train(engine, optimizer, tiny_batches(8, 8) * 4, rank, StepRules(precision="fp16"))
    torch.save({"losses": losses, "dtype": next(engine.module.parameters()).dtype}, f"{out}/rank{rank}.pt")
    spawned_ranks.leave()


@pytest.mark.skipif(not deepspeed_runs_fp16(), reason="DeepSpeed has no fp16 on this CPU (no AVX512-FP16 or AMX-FP16)")
def test_zero2_in_fp16_learns_under_deepspeeds_own_loss_scale():
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_fp16_worker, args=(free_port(), out), nprocs=2)
        ranks = [torch.load(f"{out}/rank{r}.pt") for r in (0, 1)]
    for rank in ranks:
        assert rank["dtype"] == torch.float16  # DeepSpeed's fp16: the model itself, inputs cast at its forward
        first, last = rank["losses"][:8], rank["losses"][-8:]  # the same 8 batches, first and fourth time
        assert sum(last) < 0.6 * sum(first)


@pytest.mark.skipif(deepspeed_runs_fp16(), reason="this CPU has fp16, so DeepSpeed takes it")
def test_deepspeed_fp16_where_the_cpu_has_none_is_refused_naming_the_setting_and_what_works():
    config = ExperimentConfig.model_validate({"train": {"precision": "fp16"}, "scaling": {"strategy": "deepspeed"}})
    with pytest.raises(ValueError, match="train.precision=fp16 with scaling.strategy=deepspeed.*use train.precision=bf16"):
        wrap(TinyRegression().build_model(), config)
