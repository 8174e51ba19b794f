"""The gradient of one training step, as the trainer computes it, for the equivalence tests.

``step_gradients(model, ...)`` builds a DeepSpeed student (and an EMA-style teacher copy) from
``model``, splits a fixed set of samples into micro batches with ``trainer.packing``, runs
``trainer.objective.train_micro_batch`` (forward + ``engine.backward``) on each, exactly
as ``trainer.loop`` does, and returns every parameter's full accumulated gradient (before the
optimizer step). Run under torchrun, each rank takes its share of the samples and rank 0 writes
the gradients to ``--out``:

    torchrun --nproc_per_node 2 tests/step_gradients.py --model DIR --out grads.pt --stage 3
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer import engine as E  # noqa: E402
from trainer.config import LossConfig  # noqa: E402
from trainer.losses.grpo import group_advantages  # noqa: E402
from trainer.objective import step_denominator, train_micro_batch  # noqa: E402
from trainer.packing import rank_micro_batches  # noqa: E402
from trainer.sequences import Sample  # noqa: E402

N_SAMPLES, GROUP = 8, 4


def fixed_samples(vocab: int = 1000, seed: int = 0) -> list[Sample]:
    """Eight samples of two questions with varied prompt and response lengths, some without signal."""
    rng = random.Random(seed)
    samples = []
    for i in range(N_SAMPLES):
        prompt = [rng.randrange(3, vocab) for _ in range(rng.randint(4, 9))]
        response = [rng.randrange(3, vocab) for _ in range(rng.randint(2, 11))]
        sample = Sample(f"q{i // GROUP}", i // GROUP, prompt, response, "", reward=float(i % 3 == 0))
        sample.teacher_prompt_ids = prompt + [rng.randrange(3, vocab) for _ in range(5)]  # the context
        sample.has_signal = i % 4 != 3
        samples.append(sample)
    return samples


def step_gradients(model: str, *, stage: int, algorithm: str = "sdpo", lean: bool = True,
                   checkpointing: bool = False, micro_batch_size: int = 8, max_tokens: int | None = None,
                   kl_coef: float = 0.0) -> dict[str, torch.Tensor]:
    from deepspeed.utils import safe_get_full_grad

    dist = E.init_distributed()
    config = E.ds_config(zero_stage=stage, micro_batch_size=micro_batch_size, lr=1e-3,
                         caller_owns_accumulation=True)
    student_model = E.load_model(model, config)
    if checkpointing:
        E.enable_activation_checkpointing(student_model)
    student = E.build_engine(student_model, config)
    teacher = E.build_inference_engine(E.load_model(model, config), config) if algorithm != "grpo" else None
    reference = E.build_inference_engine(E.load_model(model, config), config) if kl_coef else None
    loss_cfg = LossConfig(top_k=5, logits_chunk_tokens=7 if lean else 0, micro_batch_size=micro_batch_size,
                          max_tokens_per_micro_batch=max_tokens, kl_coef=kl_coef)

    everyone = fixed_samples()
    advantages_all = group_advantages(torch.tensor([s.reward for s in everyone]), GROUP)
    mine = list(range(dist.rank, N_SAMPLES, dist.world_size))
    samples, advantages = [everyone[i] for i in mine], advantages_all[mine]
    denominator = step_denominator(samples, algorithm, dist.world_size)
    lengths = [len(s.prompt_ids) + len(s.response_ids) for s in samples]
    for ids in rank_micro_batches(lengths, micro_batch_size, max_tokens, dist.world_size):
        train_micro_batch(student, teacher, reference, [samples[i] for i in ids],
                          advantages[ids] if algorithm == "grpo" else None, algorithm=algorithm,
                          loss=loss_cfg, pad_id=0, denominator=denominator, world_size=dist.world_size)
    # Unmanaged accumulation: the gradients are final at the boundary, inside step(); read them
    # there, before the optimizer uses them.
    grads: dict[str, torch.Tensor] = {}
    optimizer_step = student._take_model_step

    def take_then_step(*args, **kwargs):
        for name, param in E.unwrap(student).named_parameters():
            grad = safe_get_full_grad(param)
            grads[name] = grad.detach().float().cpu().clone()
        return optimizer_step(*args, **kwargs)

    student._take_model_step = take_then_step
    student.step()
    return grads


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stage", type=int, default=3)
    parser.add_argument("--algorithm", default="sdpo")
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=None)
    args = parser.parse_args()
    grads = step_gradients(args.model, stage=args.stage, algorithm=args.algorithm,
                           micro_batch_size=args.micro_batch_size, max_tokens=args.max_tokens)
    if torch.distributed.get_rank() == 0:
        torch.save(grads, args.out)
    E.shutdown_distributed()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown: on a loaded machine a native thread left by the process
    # group or DeepSpeed's shared-memory op was seen to abort it ("terminate called without an
    # active exception") after the work was done and written.
    os._exit(code)
