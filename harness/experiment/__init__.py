"""Experiments: a grid of training runs (variants x seeds), each evaluated memory-free, and the
report with confidence intervals a paper table needs.

    spec      the experiment file (typed YAML): base config, variants, seeds, evaluation
    plan      the (variant, seed) runs, their folders, status and commands
    runner    train and evaluate every run, resumably, shareable between jobs
    collect   a finished run's numbers: training curves, per-question correctness
    stats     means, t and bootstrap intervals, paired differences
    report    tables, plots and the Markdown summary of an experiment folder
    cli       ``pmd-harness experiment run|report``
"""
