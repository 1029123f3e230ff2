# Aggregation of every result into the tidy tables and their summaries, then the plots (after a failed
# run, workflows/rules/partial.smk writes them from what finished).


rule aggregate:
    input:
        evaluations=every_job(rules.evaluate.output.result),
        references=every_dataset_task(rules.reference.output[0]),
        robustness=every_job(rules.robustness.output[0]),
        records=every_job(rules.evaluate.output.records),
        pretrained=expand(rules.pretrain.output.result, dataset=PRETRAIN_DATASETS, method=trained_methods("pretrain"), seed=SEEDS),
        finetuned=every_job(rules.finetune.output.result, trained_methods()),
    output:
        csv=report(f"{OUT}/tables/main.csv", caption="../report/main_table.rst", category="Tables", labels={"table": "main (tidy)"}),
        md=f"{OUT}/tables/main.md",
        compositional=f"{OUT}/tables/compositional.md",
        robustness=f"{OUT}/tables/robustness.csv",
        robustness_summary=report(
            f"{OUT}/tables/robustness_summary.csv",
            caption="../report/robustness_table.rst",
            category="Tables",
            labels={"table": "robustness summary"},
        ),
        robustness_drops=f"{OUT}/tables/robustness_drops.csv",
        robustness_md=f"{OUT}/tables/robustness.md",
        robustness_tex=f"{OUT}/tables/robustness.tex",
        stats=report(f"{OUT}/tables/main_stats.csv", caption="../report/main_stats.rst", category="Tables", labels={"table": "main statistics"}),
        comparisons=report(
            f"{OUT}/tables/comparisons.csv", caption="../report/comparisons.rst", category="Tables", labels={"table": "comparisons"}
        ),
        tex=f"{OUT}/tables/main.tex",
        efficiency=report(
            f"{OUT}/tables/efficiency.csv", caption="../report/efficiency_table.rst", category="Tables", labels={"table": "efficiency"}
        ),
        efficiency_md=f"{OUT}/tables/efficiency.md",
        efficiency_tex=f"{OUT}/tables/efficiency.tex",
        macros=f"{OUT}/tables/macros.tex",
        provenance=f"{OUT}/tables/provenance.json",
        learning_curves=f"{OUT}/tables/learning_curves.csv",
        selection=f"{OUT}/tables/selection.md",
    params:
        config_hash=CONFIG_HASH,
        report=spec_json("report"),
        folder=lambda w, output: os.path.dirname(output.csv),
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v aggregate {input.evaluations} {input.references} --robustness {input.robustness}"
        " --training {input.pretrained} {input.finetuned} --report {params.report} --out-dir {params.folder}"
        " --config-hash {params.config_hash} > {log} 2>&1"


rule plots:
    input:
        robustness=rules.aggregate.output.robustness,
        drops=rules.aggregate.output.robustness_drops,
        stats=rules.aggregate.output.stats,
        efficiency=rules.aggregate.output.efficiency,
        learning_curves=rules.aggregate.output.learning_curves,
    output:
        main=report(f"{OUT}/plots/main_metrics.png", caption="../report/main_metrics.rst", category="Plots", labels={"plot": "main metrics"}),
        efficiency=report(
            f"{OUT}/plots/efficiency_accuracy.png", caption="../report/efficiency_accuracy.rst", category="Plots",
            labels={"plot": "efficiency vs accuracy"},
        ),
        curves=[
            report(
                f"{OUT}/plots/robustness_{task}.png",
                caption="../report/robustness_curves.rst",
                category="Robustness",
                labels={"task": task, "plot": "curves"},
            )
            for task in TASKS
        ],
        heatmaps=[
            report(
                f"{OUT}/plots/robustness_drop_{task}.png",
                caption="../report/robustness_heatmap.rst",
                category="Robustness",
                labels={"task": task, "plot": "heatmap"},
            )
            for task in TASKS
        ],
        learning_curves=report(
            f"{OUT}/plots/learning_curves.png", caption="../report/learning_curves.rst", category="Plots",
            labels={"plot": "learning curves"},
        ),
        pdfs=expand(
            f"{OUT}/plots/{{name}}.pdf",
            name=[
                "main_metrics", "efficiency_accuracy", "learning_curves",
                *[f"robustness_{t}" for t in TASKS], *[f"robustness_drop_{t}" for t in TASKS],
            ],
        ),
    params:
        report=spec_json("report"),
        tables=lambda w, input: os.path.dirname(input.robustness),
        folder=lambda w, output: os.path.dirname(output.main),
    log:
        f"{OUT}/logs/plots.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v plots --tables {params.tables} --out-dir {params.folder} --report {params.report} > {log} 2>&1"


rule paper:
    input:
        source=f"{workflow.basedir}/paper/main.tex",
        tables=rules.aggregate.output.tex,
        robustness=rules.aggregate.output.robustness_tex,
        efficiency=rules.aggregate.output.efficiency_tex,
        macros=rules.aggregate.output.macros,
        plots=rules.plots.output.pdfs,
    output:
        report("paper/main.pdf", caption="../report/paper.rst", category="Paper"),
    params:
        tables=lambda w, input: os.path.dirname(input.macros),
        plots=lambda w, input: os.path.dirname(input.plots[0]),
    log:
        f"{OUT}/logs/paper.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v paper --source {input.source} --tables {params.tables} --plots {params.plots}"
        " --out {output} > {log} 2>&1"
