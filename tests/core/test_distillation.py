"""Knowledge distillation: a student beside a frozen teacher read from its run, both KD terms reaching the student."""
import json

import pytest
import torch

from core.config.loading import load_config, to_yaml
from core.engine import checkpoint
from core.models.distillation import Distilled, pair_affinity, pixel_kl
from core.tasks.catalog import build_task
from tests.core.task_batches import manifest_for, random_batch, train_for


@pytest.fixture
def teacher_run(tmp_path):
    """A run directory as jobs.train leaves it, of a ResNet-18 FPN teacher."""
    config = load_config(None, ["train.epochs=1"])
    torch.manual_seed(3)
    teacher = build_task(config.task, manifest_for()).build_model()
    run_dir = tmp_path / "teacher"
    saved = run_dir / "ray_train" / "checkpoint_0"
    checkpoint.save(saved, teacher, None, {"epoch": 0})
    (run_dir / "config.yaml").write_text(to_yaml(config))
    (run_dir / "summary.json").write_text(json.dumps({"checkpoint": str(saved)}))
    return run_dir, teacher


def _student(teacher_dir, **weights):
    weights = {"pixel": 1.0, "pair": 1.0, **weights}
    config = load_config(None, ["task.model.encoder=mobilenet_v2", f"task.distill={{teacher: {teacher_dir}, temperature: 2.0, "
                                f"weights: {{pixel: {weights['pixel']}, pair: {weights['pair']}}}}}"])
    return build_task(config.task, manifest_for())


def test_the_teacher_is_read_from_its_run_frozen_and_kept_out_of_the_students_weights(teacher_run):
    run_dir, teacher = teacher_run
    task = _student(run_dir)
    model = task.build_model()
    assert isinstance(model, Distilled) and task.loss_weights == {"cross_entropy": 1.0, "kd_pixel": 1.0, "kd_pair": 1.0}
    assert all(torch.equal(a, b) for a, b in zip(model.teacher.state_dict().values(), teacher.state_dict().values()))
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert all(name.startswith("student.") for name in model.state_dict())
    model.eval()
    inputs, _ = task.split_batch(random_batch(), torch.device("cpu"))
    assert torch.is_tensor(model(inputs)), "evaluation sees the student's logits, as from any model of the task"
    model.train()
    assert model.teacher.training is False


@pytest.mark.parametrize("term", ["kd_pixel", "kd_pair"])
def test_each_kd_term_reaches_the_students_gradients_and_never_the_teachers(teacher_run, term):
    task = _student(teacher_run[0])
    model = task.build_model().train()
    inputs, targets = task.split_batch(random_batch(), torch.device("cpu"))
    loss = task.losses(model(inputs), targets)[term]
    loss.backward()
    assert loss.item() > 0
    assert sum(p.grad.abs().sum().item() for p in model.student.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in model.teacher.parameters())


@pytest.mark.parametrize("term", ["kd_pixel", "kd_pair"])
def test_a_student_trained_on_one_kd_term_alone_moves_towards_its_teacher(teacher_run, term):
    task = _student(teacher_run[0])
    task.loss_weights.update({name: float(name == term) for name in task.loss_weights})
    torch.manual_seed(0)
    batches = [random_batch(n=2) for _ in range(2)]
    first, last, _ = train_for(task, batches, epochs=6, lr=3e-3)
    assert last.losses[term] < 0.5 * first.losses[term], (first.losses, last.losses)


def test_the_kd_terms_by_hand():
    teacher = torch.tensor([[[[2.0]], [[0.0]]]])  # one pixel, two classes
    student = torch.tensor([[[[0.0]], [[0.0]]]])
    p = torch.softmax(torch.tensor([1.0, 0.0]), 0)  # the teacher at T = 2
    expected = (p * (p.log() - torch.log(torch.tensor([0.5, 0.5])))).sum() * 4
    assert torch.isclose(pixel_kl(student, teacher, temperature=2.0), expected)
    same = torch.rand(1, 3, 4, 4)
    assert pair_affinity(same, same * 5, pool=2) < 1e-10, "the affinity is a cosine: the scale of the logits does not matter"
    assert pair_affinity(same, torch.rand(1, 3, 4, 4), pool=2) > 0


def test_a_teacher_that_is_no_run_is_refused_naming_it(tmp_path):
    with pytest.raises(ValueError, match=f"task.distill.teacher {tmp_path} is neither a run directory"):
        _student(tmp_path).build_model()
