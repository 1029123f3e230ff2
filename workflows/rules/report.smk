# Aggregation of every result into the tidy tables and their summaries, then the plots.


rule aggregate:
    input:
        evaluations=expand(
            f"{OUT}/{{dataset}}/eval/{{task}}/{{method}}/seed{{seed}}.json",
            dataset=DATASETS,
            task=TASKS,
            method=METHODS,
            seed=SEEDS,
        ),
        references=expand(f"{OUT}/{{dataset}}/eval/{{task}}/references.json", dataset=DATASETS, task=TASKS),
        robustness=expand(
            f"{OUT}/{{dataset}}/robustness/{{task}}/{{method}}/seed{{seed}}.json",
            dataset=DATASETS,
            task=TASKS,
            method=METHODS,
            seed=SEEDS,
        ),
    output:
        csv=f"{OUT}/tables/main.csv",
        md=f"{OUT}/tables/main.md",
        robustness=f"{OUT}/tables/robustness.csv",
        robustness_summary=f"{OUT}/tables/robustness_summary.csv",
        robustness_drops=f"{OUT}/tables/robustness_drops.csv",
        robustness_md=f"{OUT}/tables/robustness.md",
    params:
        config_hash=CONFIG_HASH,
        report=lambda w: shlex.quote(json.dumps(stage_spec(config, "report"), sort_keys=True)),
        folder=lambda w, output: os.path.dirname(output.csv),
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark aggregate {input.evaluations} {input.references} --robustness {input.robustness}"
        " --report {params.report} --out-dir {params.folder} --config-hash {params.config_hash} > {log} 2>&1"


rule plots:
    input:
        robustness=rules.aggregate.output.robustness,
        drops=rules.aggregate.output.robustness_drops,
    output:
        expand(f"{OUT}/plots/robustness_{{task}}.{{ext}}", task=TASKS, ext=["pdf", "png"]),
        expand(f"{OUT}/plots/robustness_drop_{{task}}.{{ext}}", task=TASKS, ext=["pdf", "png"]),
    params:
        report=lambda w: shlex.quote(json.dumps(stage_spec(config, "report"), sort_keys=True)),
        tables=lambda w, input: os.path.dirname(input.robustness),
        folder=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{OUT}/logs/plots.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark plots --tables {params.tables} --out-dir {params.folder} --report {params.report} > {log} 2>&1"
