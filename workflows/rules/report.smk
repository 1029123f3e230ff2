# Aggregation of every evaluation result into the tidy table and its summaries.


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
    output:
        csv=f"{OUT}/tables/main.csv",
        md=f"{OUT}/tables/main.md",
    params:
        config_hash=CONFIG_HASH,
        folder=lambda w, output: os.path.dirname(output.csv),
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark aggregate {input.evaluations} {input.references} --out-dir {params.folder}"
        " --config-hash {params.config_hash} > {log} 2>&1"
