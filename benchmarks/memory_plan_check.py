"""The memory plan's formulas (trainer/memory_plan.py) against CPU measurements.

For reduced-layer random models of the real Qwen3-1.7B and Qwen3-8B widths and vocabulary
(151,936), each component the plan computes that can be measured without a GPU is measured by
``trainer.memory_probe`` (a fresh process per measurement, peak resident memory above the state
before the measured part; see that module) and compared with the plan's own formula called for
the same shape, layer count, dtype and token count:

* parameters + gradients + AdamW states after one step (float32, plain torch AdamW, i.e. ZeRO-0's
  layout in float32: 16 bytes per trained parameter; for the 8B width the embedding and LM head
  are frozen, which keeps the run under ~9 GB);
* activations of one decoder forward + backward, with and without gradient checkpointing;
* the no-gradient forward of the EMA teacher / GRPO reference (one layer's working memory);
* the loss's working memory: the reference ``sdpo_loss`` on full logits and the memory-lean
  ``lean_sdpo_loss``.

Target (issue 9): every component within 25% of the measured peak. What cannot be measured here
(DeepSpeed's partitioning across GPUs, CUDA's allocator, the KV cache of generate on a GPU) is
not in the table. Peak memory of this script: ~9 GB (the 8B-width states run); ~15 minutes on
2 cores.

    .venv/bin/python benchmarks/memory_plan_check.py            # writes results/benchmarks/memory_plan.{md,json}
    .venv/bin/python benchmarks/memory_plan_check.py --quick    # the 1.7B width only
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py

from machine import base_machine_info  # noqa: E402

from pmd.model_shapes import SHAPES  # noqa: E402
from trainer.memory_plan import DTYPE_BYTES, activation_bytes, loss_bytes, state_bytes  # noqa: E402
from trainer.memory_probe import measure  # noqa: E402

TOLERANCE = 0.25


def cases(quick: bool) -> list[dict]:
    """(shape, layers, dtype, tokens) of every measurement."""
    out = []
    # (shape, layers of the states run, layers of the activation runs, train the embeddings?)
    widths = [("Qwen3-1.7B", 2, 2, False)] + ([] if quick else [("Qwen3-8B", 1, 2, True)])
    for name, state_layers, layers, freeze in widths:
        out.append({"kind": "states", "shape": name, "layers": state_layers, "dtype": "float32",
                    "freeze_embeddings": freeze})
        dtypes = ("float32", "bfloat16") if name == "Qwen3-1.7B" else ("bfloat16",)
        for dtype in dtypes:
            for checkpointing in (False, True):
                out.append({"kind": "activations", "shape": name, "layers": layers, "dtype": dtype, "tokens": 1024,
                            "checkpointing": checkpointing})
        out.append({"kind": "activations", "shape": name, "layers": layers, "dtype": "bfloat16", "tokens": 4096,
                    "checkpointing": False, "grad": False})
        for chunk in (0, 1024):
            out.append({"kind": "loss", "shape": name, "dtype": "bfloat16", "tokens": 2048 if chunk else 1024,
                        "chunk_tokens": chunk})
    return out


def planned(spec: dict, result: dict) -> float:
    shape, b = SHAPES[spec["shape"]], DTYPE_BYTES[spec["dtype"]]
    if spec["kind"] == "states":
        return sum(state_bytes(result["parameters"], 4, zero_stage=0, gpus=1, trainable=result["trainable"]).values())
    if spec["kind"] == "activations":
        return activation_bytes(shape, spec["tokens"], b, checkpointing=spec["checkpointing"],
                                num_layers=spec["layers"], padded=False, grad=spec.get("grad", True))
    return loss_bytes(shape, spec["tokens"], b, chunk_tokens=spec["chunk_tokens"])


def label(spec: dict) -> str:
    if spec["kind"] == "states":
        return "parameters + grads + AdamW" + (" (decoder trained, embeddings frozen)" if spec.get("freeze_embeddings") else "")
    if spec["kind"] == "activations" and not spec.get("grad", True):
        return "no-gradient forward (teacher / reference)"
    if spec["kind"] == "activations":
        return f"activations, checkpointing {'on' if spec['checkpointing'] else 'off'}"
    return "loss, reference (full logits)" if not spec["chunk_tokens"] else f"loss, lean (chunks of {spec['chunk_tokens']})"


def report(rows: list[dict], info: dict, seconds: float) -> str:
    lines = ["# Memory plan vs measurement (CPU, reduced-layer models of real widths)", "",
             f"Machine: {info['cpu']} ({info['machine']}), {info['cores']} cores, torch {info['torch']}, "
             f"Python {info['python']}. Command: `.venv/bin/python benchmarks/memory_plan_check.py` ({seconds:.0f} s).", "",
             "Each row: one measurement in a fresh process (`trainer.memory_probe`: glibc mmap threshold fixed at "
             "64 KiB so freed tensors leave the resident set, kernel high-water mark reset just before the measured "
             "part, peak = VmHWM - VmRSS before), against the plan's formula (`trainer.memory_plan`) for the same "
             "shape, layers, dtype and tokens. Vocabulary 151,936 (the real one); random weights; batch 1, no "
             "padding. Target: |plan - measured| <= 25% of measured.", "",
             "| shape | layers | dtype | tokens | component | measured MiB | plan MiB | plan / measured | per token (measured) |",
             "|---|---:|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        s = r["spec"]
        per_token = f"{r['measured'] / s['tokens'] / 1024:.0f} KiB" if s.get("tokens") else "–"
        lines.append(f"| {s['shape']} | {s.get('layers', '–') if s['kind'] != 'loss' else '–'} | {s['dtype']} | "
                     f"{s.get('tokens') or '–'} | {label(s)} | {r['measured'] / 2**20:,.0f} | {r['plan'] / 2**20:,.0f} | "
                     f"{r['plan'] / r['measured']:.3f} | {per_token} |")
    worst = max(abs(r["plan"] / r["measured"] - 1) for r in rows)
    verdict = "all within" if worst <= TOLERANCE else "NOT all within"
    lines += ["", f"Worst deviation: {worst:.1%} ({verdict} {TOLERANCE:.0%}).", "",
              "Loss rows: the reference row's tokens are response positions of one micro batch (student and "
              "teacher logits, float32 log-softmax and gradients: (20 + b)·V bytes per position); the lean row "
              "holds one [V, H] head gradient in the model dtype and a few float32 [C, V] chunk buffers, so it "
              "does not grow with the tokens. States: 16 bytes per trained parameter + 4 per frozen one (float32).",
              "Not measurable here and taken from DeepSpeed's documented layout instead: ZeRO partitioning over N "
              "GPUs (ZeRO paper's (2 + 2 + 12)·Psi/N for stage 3 in bf16), DeepSpeed's buckets, CUDA context, and "
              "generate()'s KV cache on a GPU."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the Qwen3-1.7B width only")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "memory_plan.md")
    args = parser.parse_args()
    start, rows = time.time(), []
    for spec in cases(args.quick):
        t0 = time.time()
        params = {k: v for k, v in spec.items() if k not in ("kind", "shape")}
        result = measure(spec["kind"], spec["shape"], **params)
        row = {"spec": spec, "measured": result["bytes"], "plan": planned(spec, result), "seconds": time.time() - t0}
        rows.append(row)
        print(f"{spec['shape']:<11} {label(spec):<52} measured {row['measured'] / 2**20:8,.0f} MiB  plan "
              f"{row['plan'] / 2**20:8,.0f} MiB  ({row['plan'] / row['measured']:.3f})  {row['seconds']:.0f} s", flush=True)
    info = base_machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(rows, info, time.time() - start))
    args.out.with_suffix(".json").write_text(json.dumps({"machine": info, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
