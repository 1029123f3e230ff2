# Evaluation of every fine-tuned model (or zero-shot published model) on the test split, and the reference
# rows of each task.


rule evaluate:
    input:
        task_file=task_file,
        data=rules.dataset.output.result,
        tokenizer=tokenizer_file,
        checkpoint=evaluated_model,
        method=method_file,
        weights=published_weight_files,
    output:
        result=RUN.evaluation.result,
        records=RUN.evaluation.records,
    params:
        spec=spec_json("evaluate"),
        data=data_dir,
        tokenizer=optional_input("--tokenizer", "tokenizer"),
        checkpoint=optional_input("--checkpoint", "checkpoint"),
    threads: threads_for_jobs()
    resources:
        gpu=GPU,
    log:
        RUN.evaluation.log,
    conda:
        CONDA_ENV
    shell:
        evaluation_command("evaluate")


rule reference:
    input:
        task_file=task_file,
        data=rules.dataset.output.result,
    output:
        RUN.reference.output,
    params:
        spec=spec_json("reference"),
        data=data_dir,
    log:
        RUN.reference.log,
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v reference --spec {params.spec} --data {params.data} --out {output} 2> {log}"


rule robustness:
    input:
        task_file=task_file,
        lexicon=[config["robustness"]["lexicon"]] if config["robustness"].get("lexicon") else [],
        sentence_models=sentence_model_files(),
        data=rules.dataset.output.result,
        tokenizer=tokenizer_file,
        checkpoint=evaluated_model,
        method=method_file,
        weights=published_weight_files,
    output:
        result=RUN.robustness.result,
        records=RUN.robustness.records,
    params:
        spec=spec_json("robustness"),
        data=data_dir,
        tokenizer=optional_input("--tokenizer", "tokenizer"),
        checkpoint=optional_input("--checkpoint", "checkpoint"),
    threads: threads_for_jobs()
    resources:
        gpu=GPU,
    log:
        RUN.robustness.log,
    conda:
        CONDA_ENV
    shell:
        evaluation_command("robustness")
