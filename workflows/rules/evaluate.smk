# Evaluation of every fine-tuned model (or zero-shot published model) on the test split, and the reference
# rows of each task.


rule evaluate:
    input:
        task_file=task_file,
        data=rules.dataset.output.result,
        tokenizer=tokenizer_file,
        checkpoint=evaluated_model,
        method=f"{BASELINES}/{{method}}.py",
        weights=published_weight_files,
    output:
        result=f"{OUT}/{{dataset}}/eval/{{task}}/{{method}}/seed{{seed}}.json",
        records=f"{OUT}/{{dataset}}/eval/{{task}}/{{method}}/seed{{seed}}.items.npz",
    params:
        spec=spec_json("evaluate"),
        data=data_dir,
        tokenizer=optional_input("--tokenizer", "tokenizer"),
        checkpoint=optional_input("--checkpoint", "checkpoint"),
    threads: threads_for_jobs()
    resources:
        gpu=GPU,
    log:
        f"{OUT}/logs/{{dataset}}/eval/{{task}}/{{method}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v evaluate --spec {params.spec} --threads {threads} --data {params.data}"
        " {params.tokenizer} {params.checkpoint} --out {output.result} 2> {log}"


rule reference:
    input:
        task_file=task_file,
        data=rules.dataset.output.result,
    output:
        f"{OUT}/{{dataset}}/eval/{{task}}/references.json",
    params:
        spec=spec_json("reference"),
        data=data_dir,
    log:
        f"{OUT}/logs/{{dataset}}/eval/{{task}}/references.log",
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
        method=f"{BASELINES}/{{method}}.py",
        weights=published_weight_files,
    output:
        result=f"{OUT}/{{dataset}}/robustness/{{task}}/{{method}}/seed{{seed}}.json",
        records=f"{OUT}/{{dataset}}/robustness/{{task}}/{{method}}/seed{{seed}}.items.npz",
    params:
        spec=spec_json("robustness"),
        data=data_dir,
        tokenizer=optional_input("--tokenizer", "tokenizer"),
        checkpoint=optional_input("--checkpoint", "checkpoint"),
    threads: threads_for_jobs()
    resources:
        gpu=GPU,
    log:
        f"{OUT}/logs/{{dataset}}/robustness/{{task}}/{{method}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v robustness --spec {params.spec} --threads {threads} --data {params.data}"
        " {params.tokenizer} {params.checkpoint} --out {output.result} 2> {log}"
