"""Measure, on CPU, the parts of ``trainer.memory_plan`` that can be measured without a GPU.

Each measurement runs in a fresh subprocess (``measure(...)``) so nothing allocated earlier (by
the caller, by other measurements, by pytest) is in the way, and returns bytes:

* ``states``       parameters + gradients + AdamW states after one optimizer step (float32, plain
                   ``torch.optim.AdamW``: the layout of ZeRO-0 in float32, 16 bytes per parameter).
                   Measured as the resident set after the step minus the one before the model was
                   built. ``freeze_embeddings`` trains only the decoder (for shapes whose
                   embedding states would not fit this machine).
* ``activations``  the peak of one decoder forward + backward (``model.model``: embedding frozen,
                   no LM head) above what was resident before it (weights and allocated .grad),
                   with or without ``gradient_checkpointing_enable(use_reentrant=False)``;
                   ``grad`` false: a no-gradient forward (as the EMA teacher's).
* ``loss``         the peak of one loss forward + backward above its inputs (student and teacher
                   final hidden states ``[1, R, H]`` and LM-head weights ``[V, H]``, .grad already
                   allocated): the reference ``sdpo_loss`` on full logits (``chunk_tokens`` 0,
                   with the ``[B, T+1, V]`` -> gather -> float32 steps of ``response_logits``) or
                   the memory-lean ``lean_sdpo_loss``.

How the peak is read: the subprocess runs with ``MALLOC_MMAP_THRESHOLD_=65536``, which fixes
glibc's mmap threshold (no dynamic raise), so every tensor of 64 KiB or more is its own mmap and
goes back to the OS when freed; resident memory then follows live tensor memory. Just before the
measured part the kernel's high-water mark is reset (``echo 5 > /proc/self/clear_refs``) and the
resident size read (``VmRSS``); afterwards the high-water mark (``VmHWM``) minus that is the peak
the part added. Pages are counted when touched, which is when torch writes a tensor. One warm-up
call first allocates the .grad buffers and initialises kernels, so neither counts. Linux only.

    python -m trainer.memory_probe '{"kind": "activations", "shape": "Qwen3-1.7B", ...}'
"""
from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def process_memory() -> dict[str, int]:
    """This process's resident set now (``VmRSS``) and its high-water mark (``VmHWM``), in bytes."""
    text = Path("/proc/self/status").read_text()
    return {key: int(re.search(rf"{key}:\s+(\d+)", text).group(1)) * 1024 for key in ("VmRSS", "VmHWM")}


def reset_peak() -> int:
    """Reset the resident high-water mark (``clear_refs`` 5); return the resident size now (bytes)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return process_memory()["VmRSS"]


def _peak_since(base: int) -> int:
    return process_memory()["VmHWM"] - base


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def _states(spec: dict) -> dict:
    import torch

    from pmd.model_shapes import build_random_model

    base = reset_peak()
    model = build_random_model(spec["shape"], spec["layers"], dtype=torch.float32).train()
    if spec.get("freeze_embeddings"):
        model.get_input_embeddings().requires_grad_(False)
        model.get_output_embeddings().requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, foreach=False)
    ids = torch.randint(0, model.config.vocab_size, (1, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    gc.collect()
    return {"bytes": process_memory()["VmRSS"] - base, "parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in trainable)}


def _activations(spec: dict) -> dict:
    import torch

    from pmd.model_shapes import build_random_model

    model = build_random_model(spec["shape"], spec["layers"], dtype=_dtype(spec["dtype"])).train()
    model.get_input_embeddings().requires_grad_(False)
    if spec.get("checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    decoder = model.get_decoder()

    def step(tokens: int) -> None:
        ids = torch.randint(0, model.config.vocab_size, (1, tokens))
        if not spec.get("grad", True):  # a no-gradient forward (the teacher's, the reference's)
            with torch.no_grad():
                decoder(input_ids=ids, use_cache=False)
            return
        decoder(input_ids=ids, use_cache=False).last_hidden_state.float().sum().backward()

    step(16)  # allocates every .grad and warms the kernels up
    base = reset_peak()
    step(spec["tokens"])
    return {"bytes": _peak_since(base)}


def _loss(spec: dict) -> dict:
    import torch

    from pmd.model_shapes import shape_for
    from trainer.losses.sdpo import sdpo_loss

    shape, dtype = shape_for(spec["shape"]), _dtype(spec["dtype"])
    vocab, hidden = shape.vocab_size, shape.hidden_size
    gen = torch.Generator().manual_seed(0)
    w_s = torch.randn(vocab, hidden, generator=gen, dtype=dtype).mul_(0.02).requires_grad_()  # [V, H]
    w_t = w_s.detach().clone()  # the teacher's head: an EMA copy of the student's
    chunk = spec.get("chunk_tokens", 0)

    def step(rows: int) -> None:
        h_s = torch.randn(1, rows + 1, hidden, generator=gen).to(dtype).requires_grad_()  # [1, T+1, H]
        h_t = torch.randn(1, rows + 1, hidden, generator=gen).to(dtype)
        ids = torch.randint(0, vocab, (1, rows), generator=gen)
        mask = torch.ones(1, rows)
        positions = torch.arange(rows).view(1, rows, 1)
        base = reset_peak()
        if chunk:
            from trainer.losses.lean import lean_sdpo_loss

            loss, _ = lean_sdpo_loss(h_s[:, :rows], w_s, h_t[:, :rows], w_t, ids, mask, alpha=0.5,
                                     top_k=spec.get("top_k", 100), chunk_tokens=chunk)
        else:  # as trainer.sequences.response_logits: [B, T+1, V] -> gather -> float32
            kept = torch.nn.functional.linear(h_s, w_s)  # [1, T+1, V]
            logits = torch.gather(kept, 1, positions.expand(-1, -1, vocab)).float()
            del kept
            with torch.no_grad():
                kept_t = torch.nn.functional.linear(h_t, w_t)
                teacher = torch.gather(kept_t, 1, positions.expand(-1, -1, vocab)).float()
                del kept_t
            loss, _ = sdpo_loss(logits, teacher, ids, mask, alpha=0.5, top_k=spec.get("top_k", 100))
        loss.backward()
        return base

    step(8)
    base = step(spec["tokens"])
    return {"bytes": _peak_since(base)}


KINDS = {"states": _states, "activations": _activations, "loss": _loss}


def run_here(spec: dict) -> dict:
    """One measurement in this process (use ``measure`` for a clean one)."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(int(spec.get("threads", 2)))
    return {**spec, **KINDS[spec["kind"]](spec)}


def measure(kind: str, shape: str, *, layers: int = 1, dtype: str = "float32", tokens: int = 0,
            timeout: float = 900, **extra) -> dict:
    """Run one measurement in a fresh Python process; returns the spec plus ``bytes``."""
    spec = {"kind": kind, "shape": shape, "layers": layers, "dtype": dtype, "tokens": tokens, **extra}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "trainer.memory_probe", json.dumps(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"memory probe {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(run_here(json.loads(sys.argv[1]))))
