# Aggregation of every result into the tidy tables and their summaries, then the plots (after a failed
# run, workflows/rules/partial.smk writes them from what finished).


rule aggregate:
    input:
        evaluations=GRID.every_job(rules.evaluate.output.result),
        references=GRID.every_dataset_task(rules.reference.output[0]),
        robustness=GRID.every_job(rules.robustness.output.result),
        records=GRID.every_job(rules.evaluate.output.records),
        pretrained=GRID.pretrain_results(RUN),
        finetuned=GRID.finetune_results(RUN),
    output:
        # one output per table fusebench aggregate writes (benchmark.paths.TABLES; checked below)
        main_csv=report(RUN.tables.main_csv, caption="../report/main_table.rst", category="Tables", labels={"table": "main (tidy)"}),
        main_md=RUN.tables.main_md,
        main_tex=RUN.tables.main_tex,
        main_stats=report(RUN.tables.main_stats, caption="../report/main_stats.rst", category="Tables", labels={"table": "main statistics"}),
        comparisons=report(RUN.tables.comparisons, caption="../report/comparisons.rst", category="Tables", labels={"table": "comparisons"}),
        compositional=RUN.tables.compositional,
        learning_curves=RUN.tables.learning_curves,
        selection=RUN.tables.selection,
        robustness_csv=RUN.tables.robustness_csv,
        robustness_summary=report(
            RUN.tables.robustness_summary,
            caption="../report/robustness_table.rst",
            category="Tables",
            labels={"table": "robustness summary"},
        ),
        robustness_drops=RUN.tables.robustness_drops,
        robustness_cells=RUN.tables.robustness_cells,
        robustness_md=RUN.tables.robustness_md,
        robustness_tex=RUN.tables.robustness_tex,
        efficiency_csv=report(
            RUN.tables.efficiency_csv, caption="../report/efficiency_table.rst", category="Tables", labels={"table": "efficiency"}
        ),
        efficiency_md=RUN.tables.efficiency_md,
        efficiency_tex=RUN.tables.efficiency_tex,
        controls_md=RUN.tables.controls_md,
        controls_tex=RUN.tables.controls_tex,
        macros=RUN.tables.macros,
        provenance=RUN.tables.provenance,
    params:
        config_hash=CONFIG_HASH,
        report=spec_json("report"),
        folder=lambda w, output: os.path.dirname(output.main_csv),
    log:
        RUN.aggregate_log,
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v aggregate {input.evaluations} {input.references} --robustness {input.robustness}"
        " --training {input.pretrained} {input.finetuned} --report {params.report} --out-dir {params.folder}"
        " --config-hash {params.config_hash} > {log} 2>&1"


if set(rules.aggregate.output.keys()) != set(RUN.tables._fields):
    raise WorkflowError("the aggregate rule's outputs must be the tables of benchmark.paths.TABLES, one each")


rule plots:
    input:
        robustness=rules.aggregate.output.robustness_csv,
        drops=rules.aggregate.output.robustness_drops,
        stats=rules.aggregate.output.main_stats,
        efficiency=rules.aggregate.output.efficiency_csv,
        learning_curves=rules.aggregate.output.learning_curves,
    output:
        main=report(f"{RUN.plots_dir}/main_metrics.png", caption="../report/main_metrics.rst", category="Plots", labels={"plot": "main metrics"}),
        efficiency=report(
            f"{RUN.plots_dir}/efficiency_accuracy.png", caption="../report/efficiency_accuracy.rst", category="Plots",
            labels={"plot": "efficiency vs accuracy"},
        ),
        curves=[
            report(
                f"{RUN.plots_dir}/robustness_{task}.png",
                caption="../report/robustness_curves.rst",
                category="Robustness",
                labels={"task": task, "plot": "curves"},
            )
            for task in TASKS
        ],
        heatmaps=[
            report(
                f"{RUN.plots_dir}/robustness_drop_{task}.png",
                caption="../report/robustness_heatmap.rst",
                category="Robustness",
                labels={"task": task, "plot": "heatmap"},
            )
            for task in TASKS
        ],
        learning_curves=report(
            f"{RUN.plots_dir}/learning_curves.png", caption="../report/learning_curves.rst", category="Plots",
            labels={"plot": "learning curves"},
        ),
        pdfs=expand(
            f"{RUN.plots_dir}/{{name}}.pdf",
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
        RUN.plots_log,
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v plots --tables {params.tables} --out-dir {params.folder} --report {params.report} > {log} 2>&1"


rule paper:
    input:
        source=f"{workflow.basedir}/paper/main.tex",
        tables=rules.aggregate.output.main_tex,
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
        RUN.paper_log,
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v paper --source {input.source} --tables {params.tables} --plots {params.plots}"
        " --out {output} > {log} 2>&1"
