# Data: one dataset build and one tokenizer per configured dataset.


rule dataset:
    output:
        manifest=f"{OUT}/{{dataset}}/data/manifest.json",
        result=f"{OUT}/{{dataset}}/data.result.json",
    params:
        spec=spec_json("data"),
        folder=lambda w, output: os.path.dirname(output.manifest),
    log:
        f"{OUT}/logs/{{dataset}}/data.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark data --spec {params.spec} --out {params.folder} 2> {log}"


rule tokenizer:
    input:
        manifest=rules.dataset.output.manifest,
    output:
        f"{OUT}/{{dataset}}/tokenizer.json",
    params:
        spec=spec_json("tokenizer"),
        folder=lambda w, input: os.path.dirname(input.manifest),
    log:
        f"{OUT}/logs/{{dataset}}/tokenizer.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark tokenizer --spec {params.spec} --data {params.folder} --out {output} 2> {log}"
