# Five-landmark similarity alignment to a crop template, stored as a memory-mapped shard.


rule align:
    input:
        manifest=paths.manifest(),
        extracted=paths.extracted_marker(),
    output:
        images=paths.aligned_images(),
        index=paths.aligned_index(),
        qa=paths.aligned_qa(),
    params:
        root=lambda wc: paths.extracted(wc.dataset),
        layout=lambda wc: part(wc.dataset).layout,
        scale=config["align"]["scale"],
    log:
        paths.log("align", "{dataset}/{template}"),
    benchmark:
        paths.benchmark("align", "{dataset}/{template}")
    threads: 1
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/align.py"
