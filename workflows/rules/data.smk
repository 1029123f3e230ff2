# Data: one dataset per configured name (built, or checked where its adapter reads it in place) and one tokenizer (plus
# the own tokenizer of each pretrained text tower a method starts from).


rule dataset:
    input:
        dataset_inputs,
    output:
        result=RUN.data.output,
    params:
        spec=spec_json("data"),
        folder=lambda w: build_dir(w.dataset),
    log:
        RUN.data.log,
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v data --spec {params.spec} --out {params.folder} 2> {log}"


rule tokenizer:
    input:
        data=rules.dataset.output.result,
    output:
        RUN.tokenizer.output,
    params:
        spec=spec_json("tokenizer"),
        data=data_dir,
    log:
        RUN.tokenizer.log,
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v tokenizer --spec {params.spec} --data {params.data} --out {output} 2> {log}"


rule pretrained_tokenizer:
    input:
        lambda w: local_weight_files(text_tokenizer_init(config, PRETRAINED_TOKENIZERS[w.tokenizer])),
    output:
        RUN.pretrained_tokenizer.output,
    params:
        spec=lambda w: quoted_json(stage_spec(config, "tokenizer", method=PRETRAINED_TOKENIZERS[w.tokenizer])),
    log:
        RUN.pretrained_tokenizer.log,
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v tokenizer --spec {params.spec} --out {output} 2> {log}"
