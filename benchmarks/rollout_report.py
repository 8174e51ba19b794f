"""Markdown rendering of ``benchmarks/rollout.py``'s results: the report tables and the target verdict.

Split out of ``benchmarks/rollout.py`` (the entry point, which re-exports these names).
"""
from __future__ import annotations

import json
from pathlib import Path

ENGINES = ("hf", "vllm")
SAMPLES_PER_PROMPT = 4
TARGET_RATIO = 3.0          # vllm / hf tokens/s at TARGET_SEQUENCES sequences, on CPU (the issue)
TARGET_SEQUENCES = 64


# ----------------------------------------------------------------- report
def _f(value, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _spread(summary: dict, spec: str = ".1f") -> str:
    if not summary or summary.get("median") is None:
        return "n/a"
    return f"{_f(summary['median'], spec)} ({_f(summary['min'], spec)}-{_f(summary['max'], spec)})"


def target_verdict(model: dict, target: float = TARGET_RATIO, sequences: int = TARGET_SEQUENCES) -> str | None:
    """'met' / 'missed' from the median per-repeat ratio at ``sequences``; None when not measured."""
    cell = model.get("cells", {}).get(str(sequences))
    ratio = cell and cell["summary"].get("ratio_vllm_hf")
    if not ratio or ratio["median"] is None:
        return None
    return "met" if ratio["median"] >= target else "missed"


def render_report(data: dict) -> str:
    """The Markdown report of a run's JSON (``main`` writes both)."""
    machine, settings = data["machine"], data["settings"]
    lines = ["# Rollout engine benchmark: `hf` vs `vllm` generation", "",
             f"Machine: {machine.get('machine')}, {machine.get('cpu')}, {machine.get('cores')} cores, Python "
             f"{machine.get('python')}, torch {machine.get('torch')}, transformers {machine.get('transformers')}, "
             f"vLLM {machine.get('vllm')}. Command: `{settings['command'].strip()}`"
             + (" (quick run)" if settings.get("quick") else "")
             + (f", {settings['total_s'] / 60:.1f} min" if settings.get("total_s") else "") + ".", "",
             f"Prompts: the first n/{SAMPLES_PER_PROMPT} chat-templated `demo_mcq` train questions x "
             f"{SAMPLES_PER_PROMPT} samples = n sequences in one generate call, the same token ids on both engines; "
             f"up to {settings['max_new_tokens']} new tokens, T = 1.0, top-p 1.0, no top-k, stop at EOS, same seed. "
             "tokens/s = response tokens each engine actually generated / wall seconds of the generate call "
             f"(median and min-max over {settings['repeats']} interleaved repeats, the engine going first "
             "alternating; one uncounted warm-up call each). vLLM's prefix cache is reset before every call, as "
             "a weight sync does before each training step's rollouts. Each engine runs in its own worker process.",
             ""]
    for model in data["models"]:
        startup = model.get("startup", {})
        threads = ", ".join(f"{e} {startup[e].get('torch_threads')}" for e in model["engines"] if e in startup)
        lines.append(f"- **{model['label']}** ({model['dtype']}, {model['device']}): "
                     f"{model['facts']['parameters'] / 1e6:.1f} M parameters, {model['facts']['num_hidden_layers']} "
                     f"layers, hidden {model['facts']['hidden_size']}, vocab {model['facts']['vocab_size']}; "
                     f"torch threads in the workers: {threads} (OMP_NUM_THREADS={model['threads']}); prompt tokens "
                     + ", ".join(f"{min(v)}-{max(v)} (n={k})" for k, v in model["prompt_tokens"].items())
                     + (f"; vLLM `max_num_batched_tokens` {model['max_batched_tokens']} (no prefill split over steps: "
                        "vLLM's CPU build cannot rewind a seeded request's generator)"
                        if model.get("max_batched_tokens") else "") + ".")
    lines += ["", "## Generation throughput", "",
              "| model | sequences | tokens per call hf / vllm | hf tok/s | vllm tok/s | vllm / hf per repeat | "
              f"target >= {TARGET_RATIO:g}x |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for model in data["models"]:
        for n, cell in model.get("cells", {}).items():
            s = cell["summary"]
            ratio = s.get("ratio_vllm_hf")
            target = ("met" if ratio["median"] >= TARGET_RATIO else "missed") if ratio and int(n) == TARGET_SEQUENCES \
                else ("(not the target cell)" if ratio else "n/a")
            tokens = " / ".join(_f(s[e]["tokens"]["median"], ".0f") if e in s else "n/a" for e in ENGINES)
            rates = " | ".join(_spread(s.get(e, {}).get("tokens_per_s")) for e in ENGINES)
            lines.append(f"| {model['label']} | {n} | {tokens} | {rates} | "
                         f"{_spread(ratio, '.2f')} | {target} |")
    lines += ["", "Cells: median (min-max). The ratio column is the median (min-max) of the per-repeat ratios "
              "vllm tok/s / hf tok/s of back-to-back calls.", "",
              "## Start-up, weight sync and per-step cost", "",
              "| model | start-up s hf / vllm | weight sync s (vllm) | sequences | one-token call s hf / vllm | "
              "decode ms/step hf / vllm | peak RSS GiB hf / vllm |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for model in data["models"]:
        startup, rss = model.get("startup", {}), model.get("peak_rss_gib", {})
        start = " / ".join(_f(startup.get(e, {}).get("load_s"), ".1f") for e in ENGINES)
        peak = " / ".join(_f(rss.get(e), ".2f") for e in ENGINES)
        sync = model.get("sync_s")
        sync_text = f"{_spread(sync, '.3f')}, {sync['n']} syncs" if sync else "n/a"
        for i, (n, cell) in enumerate(model.get("cells", {}).items()):
            first = model["first_token"][n]
            ft = " / ".join(_f(first.get(e, {}).get("wall_s"), ".2f") for e in ENGINES)
            step = " / ".join(_f(cell["summary"].get(e, {}).get("decode_step_ms"), ".1f") for e in ENGINES)
            lines.append(f"| {model['label'] if i == 0 else ''} | {start if i == 0 else ''} | "
                         f"{sync_text if i == 0 else ''} | {n} | {ft} | {step} | {peak if i == 0 else ''} |")
    lines += ["", "- Start-up: engine construction in its worker (hf: `from_pretrained` + `.to(device)`; vllm: "
              "`VLLMEngine(...)`, its `load_seconds`), imports excluded; measured once.",
              "- Weight sync: `VLLMEngine.sync_weights(model)` with a Hugging Face model of the same folder and "
              "dtype (every parameter handed over, reloaded in place, prefix cache reset).",
              "- One-token call: the same generate call with `max_new_tokens=1` (prefill of every prompt plus one "
              "sampled token). Decode ms/step = (median generate wall - one-token call) / (max new tokens - 1), "
              "an estimate of one decode step for all sequences."]
    verdicts = [(m["label"], target_verdict(m)) for m in data["models"]]
    verdicts = [(label, v) for label, v in verdicts if v]
    if verdicts:
        lines += ["", "## Target", "",
                  f"vllm >= {TARGET_RATIO:g}x hf tokens/s at {TARGET_SEQUENCES} sequences on this CPU: "
                  + "; ".join(f"{label} {v}" for label, v in verdicts) + "."]
    if data.get("notes"):
        lines += ["", "## Notes", "", data["notes"].strip()]
    return "\n".join(lines) + "\n"


def write_report(data: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(data), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.json').name}", flush=True)
