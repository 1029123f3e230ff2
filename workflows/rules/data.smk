# Data: one dataset per configured name (built, or checked where its adapter reads it in place) and one tokenizer.


rule dataset:
    input:
        dataset_inputs,
    output:
        result=f"{OUT}/{{dataset}}/data.result.json",
    params:
        spec=spec_json("data"),
        folder=lambda w: build_dir(w.dataset),
    log:
        f"{OUT}/logs/{{dataset}}/data.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v data --spec {params.spec} --out {params.folder} 2> {log}"


rule tokenizer:
    input:
        data=rules.dataset.output.result,
    output:
        f"{OUT}/{{dataset}}/tokenizer.json",
    params:
        spec=spec_json("tokenizer"),
        data=data_dir,
    log:
        f"{OUT}/logs/{{dataset}}/tokenizer.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v tokenizer --spec {params.spec} --data {params.data} --out {output} 2> {log}"
