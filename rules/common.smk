# Helpers shared by the rules: what the config asks for, as artifact paths.
import os

from facerepro.config import FITTED_METHODS, evaluations, run_settings
from facerepro.data import folder, registry
from facerepro.training import gpu
from facerepro.views import View, protocol_view, protocol_views


wildcard_constraints:
    source="[^/]+",
    file="[^/]+",
    dataset="[^/]+/[^/]+",
    evalset="[^/]+/[^/]+",
    template="[a-z0-9_]+",
    run="[^/]+",
    view="[a-z]+(~[a-z0-9_.]+)*",
    protocol="[^/]+",


def source_config(source):
    return config["datasets"][source]


def part(dataset):
    source, name = dataset.split("/")
    return registry.part_spec(source_config(source), name)


def fetch_inputs(wc):
    """A mirrored source's checksum list, written with the mirror (fetch reads it)."""
    if registry.source_spec(source_config(wc.source)).mirrored:
        return {"sums": paths.mirror_file(wc.source, "SHA256SUMS")}
    return {}


def extract_inputs(wc):
    """A part's fetched files; for a folder source every file of the folder (or the archive)
    and the optional files it names by absolute path (a relative one is inside the folder)."""
    source = wc.dataset.split("/")[0]
    spec = source_config(source)
    if spec["kind"] == registry.FOLDER:
        given = registry.folder_files(spec).values()
        return [*folder.inputs(spec["path"]), *(f for f in given if os.path.isabs(f))]
    return [paths.download(source, f) for f in part(wc.dataset).files]


def folder_params(wc):
    """What facerepro.data.folder.copy_folder copies for a folder source; {} otherwise."""
    source = wc.dataset.split("/")[0]
    spec = source_config(source)
    if spec["kind"] != registry.FOLDER:
        return {}
    return {"source": spec["path"], "files": registry.folder_files(spec),
            "key": f"datasets.{source}.path"}


def aligned_shard(dataset, template):
    return [paths.aligned_images(dataset, template), paths.aligned_index(dataset, template)]


def train_inputs(wc):
    """A run's aligned training shard, the model it starts from (``init_from``) and, for
    attribute labels, the extracted dataset (its attribute file)."""
    run = config["runs"][wc.run]
    images, index = aligned_shard(run["train"], run["template"])
    inputs = {"images": images, "index": index}
    if "init_from" in run:
        inputs["init"] = paths.model(run["init_from"])
    if run["labels"] == "attributes":
        inputs["extracted"] = paths.extracted_marker(run["train"])
    return inputs


def view_template(run, view):
    """The crop a features view of a run reads: the view's own, else the run's."""
    return View.parse(view).template or config["runs"][run]["template"]


def evaluate_inputs(wc):
    """A protocol's features views, its dataset's files and manifest, Joint Bayesian's held-out
    training features, a look-up table's training features, and MegaFace's distractors'
    features."""
    protocol = config["protocols"][wc.protocol]
    inputs = {"features": [paths.features(wc.run, protocol["dataset"], view.name)
                           for view in protocol_views(protocol)],
              "extracted": paths.extracted_marker(protocol["dataset"]),
              "faces": paths.faces_summary(protocol["dataset"]),
              "manifest": paths.manifest(protocol["dataset"])}
    if any(s.startswith("joint_bayesian") for s in protocol["scorers"]):
        inputs["jb_train"] = paths.features(wc.run, protocol["joint_bayesian"]["train"],
                                            "holdout")
    if protocol["kind"] == "lut_attribute":
        inputs["train"] = paths.features(wc.run, protocol["train"], "train")
        inputs["train_extracted"] = paths.extracted_marker(protocol["train"])
    if protocol["kind"] == "megaface":   # the distractors' view follows the probes'
        inputs["features"].append(paths.features(wc.run, protocol["distractors"],
                                                 protocol_view(protocol).name))
    return inputs


def train_root(protocol):
    """The dataset a look-up-table protocol learns from, extracted (None for other kinds)."""
    return paths.extracted(protocol["train"]) if "train" in protocol else None


def needed_shards():
    """(dataset, template) of every run's training set, evaluation sets (MegaFace's
    distractors too) and the sets Joint Bayesian and look-up tables learn from."""
    shards = {(run["train"], run["template"]) for run in config["runs"].values()}
    for run, name in evaluations(config):
        protocol = config["protocols"][name]
        template = config["runs"][run]["template"]
        shards.add((protocol["dataset"], protocol_view(protocol).template or template))
        if "distractors" in protocol:
            shards.add((protocol["distractors"], protocol_view(protocol).template or template))
        for key in ("joint_bayesian", "train"):
            if key in protocol:
                train = protocol[key]["train"] if key == "joint_bayesian" else protocol[key]
                shards.add((train, template))
    return sorted(shards)


def report_inputs():
    """What the report reads, by kind, keyed as the report shows it (each path once)."""
    shards = needed_shards()
    return {
        "metrics": all_metrics(),
        "models": {run: paths.model_info(run) for run in config["runs"]},
        "manifests": {d: paths.manifest(d) for d, _ in shards},
        "qa": {f"{d} / {t}": paths.aligned_qa(d, t) for d, t in shards},
        "indexes": {f"{d} / {t}": paths.aligned_index(d, t) for d, t in shards},
        "faces": {d: paths.faces_summary(d) for d, _ in shards},
        "faces_qa": {d: paths.faces_qa(d) for d, _ in shards},
    }


def all_metrics():
    return {(run, protocol): paths.metrics(run, protocol) for run, protocol in evaluations(config)}


def gpus_per_job(gpus):
    """GPUs a job counts against `--resources gpu=N`: its own on CUDA (also `auto` on a
    machine with GPUs), none on the CPU. Rules call it inside a function of the wildcards:
    counting the GPUs of `auto` imports torch, which parsing the rules then never does."""
    return gpus if gpu.uses_cuda(config["device"]) else 0


# Job order on few cores (Snakemake starts the ready job of highest priority first): the data,
# which every training waits on, then the trainings, the long jobs; features and evaluations
# fill the cores around them. Without it Snakemake preferred jobs with large inputs, started
# the longest trainings late and ran them alone at the end, one core idle (issue 21).
PRIORITY_DATA, PRIORITY_TRAIN = 2, 1


def compute_threads(wc):
    """Threads of a train or features job: on CUDA the machine's (the loader and host work of
    a GPU job), on the CPU `cpu_threads`. Two 1-thread trainings side by side outrun one on 2
    threads, and a job's numbers then do not depend on how many cores the machine has."""
    return workflow.cores if gpu.uses_cuda(config["device"]) else config["cpu_threads"]


def data_threads(threads):
    """Threads of a data-preparation job: its rule's own on CUDA, where the trainings take the
    whole machine; on the CPU `cpu_threads`, as every train and features job. Snakemake never
    holds a core free for a wider job: on two cores a 2-thread align waited while 1-thread
    trainings kept starting, and CelebA's trainings ran alone at the end (issue 21)."""
    return lambda wc: threads if gpu.uses_cuda(config["device"]) else config["cpu_threads"]


def train_gpus(wc):
    """A fitted baseline (PCA of pixels or LBP) computes on the CPU: it holds no GPU."""
    run = config["runs"][wc.run]
    return 0 if run["method"] in FITTED_METHODS else gpus_per_job(run["gpus"])
