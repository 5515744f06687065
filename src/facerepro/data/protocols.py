"""Evaluation protocols as plain pandas dataframes: pairs, splits and labels read from the
datasets' own files (LFW ``pairs.txt`` and its dev files, CelebA's partition, attribute and
identity lists, the YouTube Faces ``splits.txt``), and the splits we make ourselves
(identities held out from training; the identification splits are drawn in
:mod:`facerepro.evaluation.identification`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd


def read_pairs(path: str | Path, folds: int = 10) -> pd.DataFrame:
    """A verification pairs file: LFW's format, or a CSV when the name ends in ``.csv``.

    Returns one row per pair in file order with columns fold, image1, image2 (each image's
    name within the part's image folder, without suffix: ``Name/Name_0001``; the manifest's
    image_id less its first folder, :func:`within_folder`) and same. Every fold holds same and
    different pairs, so that each fold's threshold and VAL are defined.

    LFW format (:func:`_read_lfw_pairs`): image ``n`` of ``Name`` is the file
    ``Name/Name_<nnnn>`` (LFW's own names). CSV: a header ``path_a,path_b,same[,fold]``, paths
    relative to the image folder (``Alice/IMG_0001.jpg``), ``same`` 1 / 0 (or true / false);
    without a ``fold`` column pair ``i`` (0-based, in file order) is in fold ``i mod folds``,
    which, unlike LFW's folds, are not disjoint in people.
    """
    pairs = _read_csv_pairs(path, folds) if str(path).lower().endswith(".csv") \
        else _read_lfw_pairs(path)
    lacking = [int(f) for f, same in pairs.groupby("fold")["same"] if same.all() or not same.any()]
    if lacking:
        raise ValueError(f"{path}: fold(s) {lacking} hold only same or only different pairs; "
                         f"every fold needs both (give more pairs, or fewer folds)")
    return pairs


def _read_lfw_pairs(path: str | Path) -> pd.DataFrame:
    """Parse an LFW ``pairs.txt``: header ``folds<TAB>n``, then per fold n same, n different.

    The View 1 files (``pairsDevTrain.txt``, ``pairsDevTest.txt``) have the header ``n`` alone:
    one fold. Besides :func:`read_pairs`'s columns: name1, num1, name2, num2. The fold of a pair
    is its position in the file, as in the official protocol.
    """
    lines = Path(path).read_text().splitlines()
    try:
        header = [int(v) for v in lines[0].split()]
        folds, per_fold = header if len(header) == 2 else (1, *header)
    except (ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"{path}: first line must be '<folds>\\t<pairs per fold>' "
                         f"(or '<pairs>' for the View 1 files)") from exc
    body = [line.split() for line in lines[1:] if line.strip()]
    expected = folds * 2 * per_fold
    if len(body) != expected:
        raise ValueError(f"{path}: {len(body)} pair lines, header promises {expected}")
    rows = []
    for i, fields in enumerate(body):
        fold, within = divmod(i, 2 * per_fold)
        same = within < per_fold
        try:
            if same and len(fields) == 3:
                rows.append((fold, fields[0], int(fields[1]), fields[0], int(fields[2]), True))
                continue
            if not same and len(fields) == 4:
                rows.append((fold, fields[0], int(fields[1]), fields[2], int(fields[3]), False))
                continue
        except ValueError:
            pass
        raise ValueError(f"{path}: line {i + 2} {' '.join(fields)!r} is not a "
                         f"{'same' if same else 'different'}-person pair")
    pairs = pd.DataFrame(rows, columns=["fold", "name1", "num1", "name2", "num2", "same"])
    pairs["image1"] = [lfw_image_name(n, k) for n, k in zip(pairs.name1, pairs.num1, strict=True)]
    pairs["image2"] = [lfw_image_name(n, k) for n, k in zip(pairs.name2, pairs.num2, strict=True)]
    return pairs


def lfw_image_name(name: str, num: int) -> str:
    """The name within the image folder of LFW image ``num`` (1-based) of person ``name``."""
    return f"{name}/{name}_{num:04d}"


PAIRS_CSV_COLUMNS = ("path_a", "path_b", "same")
_TRUTH = {"1": True, "0": False, "true": True, "false": False}


def _read_csv_pairs(path: str | Path, folds: int) -> pd.DataFrame:
    table = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    table.columns = [c.strip().lower() for c in table.columns]
    if any(c not in table.columns for c in PAIRS_CSV_COLUMNS):
        raise ValueError(f"{path}: the first line must be the header path_a,path_b,same[,fold]; "
                         f"it is {','.join(table.columns)!r}")
    same = table["same"].str.strip().str.lower().map(_TRUTH)
    images = {}
    for column in ("path_a", "path_b"):
        names = []
        for line, value in enumerate(table[column].str.strip(), start=2):
            name = PurePosixPath(value)
            if not value or name.is_absolute() or ".." in name.parts or len(name.parts) < 2:
                raise ValueError(f"{path}: line {line}: {column} {value!r} must be an image path "
                                 f"inside the folder, '<person>/<file>' (e.g. Alice/IMG_1.jpg)")
            names.append(name.with_suffix("").as_posix())
        images[column] = names
    if same.isna().any():
        line = int(same.isna().to_numpy().argmax()) + 2
        raise ValueError(f"{path}: line {line}: same must be 1 or 0 (or true / false), not "
                         f"{table['same'].iloc[line - 2]!r}")
    if "fold" in table.columns:
        try:
            fold = table["fold"].astype(int).to_numpy()
        except ValueError as exc:
            raise ValueError(f"{path}: the fold column must hold integers") from exc
    else:
        fold = np.arange(len(table)) % folds
    return pd.DataFrame({"fold": fold, "image1": images["path_a"], "image2": images["path_b"],
                         "same": same.astype(bool).to_numpy()})


CELEBA_PARTITIONS = {0: "train", 1: "val", 2: "test"}


def read_celeba_partition(path: str | Path) -> pd.DataFrame:
    """CelebA's ``list_eval_partition.txt`` (``<image> <0|1|2>`` per line): columns image,
    partition, split (train / val / test), in file order."""
    table = _whitespace_table(path, ["image", "partition"])
    table["partition"] = table["partition"].astype(int)
    unknown = sorted(set(table["partition"]) - set(CELEBA_PARTITIONS))
    if unknown:
        raise ValueError(f"{path}: partitions must be 0, 1 or 2; found {unknown}")
    table["split"] = table["partition"].map(CELEBA_PARTITIONS)
    return table


def read_celeba_identities(path: str | Path) -> pd.DataFrame:
    """CelebA's ``identity_CelebA.txt`` (``<image> <identity number>``): columns image,
    identity (a string, as the manifest's)."""
    return _whitespace_table(path, ["image", "identity"])


def read_celeba_attributes(path: str | Path) -> pd.DataFrame:
    """A CelebA-format attribute file (``list_attr_celeba.txt``; SynthFaces'
    ``lfw_attributes.txt``): a count line, the attribute names, then ``<image> +-1 ...``.

    Returns column image, then one boolean column per attribute (True where the file says 1).
    """
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and a line of attribute names")
    try:
        count = int(lines[0].split()[0])
    except ValueError as exc:
        raise ValueError(f"{path}: the first line must be the number of images") from exc
    names = lines[1].split()
    rows = [line.split() for line in lines[2:]]
    if len(rows) != count:
        raise ValueError(f"{path}: {len(rows)} image lines, the first line promises {count}")
    bad = next((i for i, r in enumerate(rows) if len(r) != len(names) + 1), None)
    if bad is not None:
        raise ValueError(f"{path}: line {bad + 3} has {len(rows[bad]) - 1} values for "
                         f"{len(names)} attributes")
    values = np.array([r[1:] for r in rows], dtype=np.int8).reshape(len(rows), len(names))
    if not np.isin(values, (-1, 1)).all():
        raise ValueError(f"{path}: attribute values must be 1 or -1")
    table = pd.DataFrame(values == 1, columns=names)
    table.insert(0, "image", [r[0] for r in rows])
    return table


def _whitespace_table(path: str | Path, columns: list[str]) -> pd.DataFrame:
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    bad = next((i for i, r in enumerate(rows) if len(r) != len(columns)), None)
    if bad is not None:
        raise ValueError(f"{path}: line {bad + 1} has {len(rows[bad])} fields, expected "
                         f"{len(columns)} ({', '.join(columns)})")
    return pd.DataFrame(rows, columns=columns)


YTF_COLUMNS = ("split number", "first name", "second name", "is same")


def read_ytf_splits(path: str | Path) -> pd.DataFrame:
    """The YouTube Faces benchmark's ``splits.txt``: CSV with a header naming at least
    ``split number, first name, second name, is same``; names are ``<Person>/<video>``.

    Returns one row per video pair in file order: fold (0-based; the file's split number
    minus one), video1, video2 (``Person/video``, as the frame folders), name1, name2, same.
    Extra columns (the corrected file's) are ignored.
    """
    table = pd.read_csv(path, skipinitialspace=True, dtype=str)
    table.columns = [c.strip().lower() for c in table.columns]
    missing = [c for c in YTF_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: header lacks {missing}; expected the columns "
                         f"{', '.join(YTF_COLUMNS)}")
    table = table[list(YTF_COLUMNS)].apply(lambda col: col.str.strip())
    if table.isna().any().any():
        raise ValueError(f"{path}: line {int(table.isna().any(axis=1).idxmax()) + 2} has "
                         f"missing fields")
    videos = table[["first name", "second name"]]
    if not videos.apply(lambda col: col.str.fullmatch(r"[^/]+/[^/]+")).all().all():
        raise ValueError(f"{path}: video names must be '<Person>/<video>'")
    same = table["is same"].astype(int)
    if not same.isin((0, 1)).all():
        raise ValueError(f"{path}: 'is same' must be 0 or 1")
    return pd.DataFrame({
        "fold": table["split number"].astype(int) - 1,
        "video1": videos["first name"],
        "video2": videos["second name"],
        "name1": videos["first name"].str.split("/").str[0],
        "name2": videos["second name"].str.split("/").str[0],
        "same": same.astype(bool),
    })


def video_frames(image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(video, frame number) of each YouTube Faces frame id: ``.../<Person>/<video>/<name>``
    is video ``<Person>/<video>``, and the frame number is what follows the name's last dot
    (YTF's ``0.555``: frame 555 of video 0), so frames sort in recording order."""
    parts = [str(i).split("/") for i in np.asarray(image_ids)]
    numbers = [p[-1].rpartition(".")[2] for p in parts]
    bad = next((i for i, (p, n) in enumerate(zip(parts, numbers, strict=True))
                if len(p) < 3 or not n.isdigit()), None)
    if bad is not None:
        raise ValueError(f"frame {'/'.join(parts[bad])!r} is not '.../<Person>/<video>/"
                         f"<name>.<frame number>' as YTF's "
                         f"'frame_images_DB/Aaron_Eckhart/0/0.555.jpg' is")
    frame = np.array([int(n) for n in numbers])
    return np.array(["/".join(p[-3:-1]) for p in parts]), frame


HOLDOUT = "holdout"


def hold_out_identities(manifest: pd.DataFrame, identities: int, seed: int,
                        min_images: int = 2) -> pd.DataFrame:
    """Mark ``identities`` people of a training set as split ``holdout``: never trained on.

    DeepID2+ trains Joint Bayesian on 2,000 people held out from net training. Only people
    with at least ``min_images`` kept images are eligible, because a class with one image
    carries no within-person information, and only people whose images are all in split
    ``train``, so that no test or validation image is ever moved. The choice is a seeded
    permutation of the eligible names in sorted order: it depends only on the data and seed.
    """
    kept = manifest[manifest["status"] == "kept"]
    sizes = kept.groupby("identity").size()
    # people with any non-training image (a test or validation split) are never moved
    training_only = kept.groupby("identity")["split"].agg(lambda s: (s == "train").all())
    eligible = np.sort(sizes.index[(sizes >= min_images)
                                   & training_only.reindex(sizes.index)].to_numpy(dtype=str))
    if identities > len(eligible):
        raise ValueError(f"holdout asks for {identities} identities but only {len(eligible)} "
                         f"have >= {min_images} kept images, all in split train; lower "
                         f"holdout.identities")
    chosen = np.random.default_rng(seed).permutation(eligible)[:identities]
    out = manifest.copy()
    out.loc[out["identity"].isin(chosen), "split"] = HOLDOUT
    return out


def _file_keys(names: pd.Series) -> list[str]:
    """A CelebA-format file's image names without their suffix (``Name/Name_0001``)."""
    return [str(Path(name).with_suffix("")) for name in names]


def within_folder(image_ids: np.ndarray) -> np.ndarray:
    """Image ids without their image folder (``lfw/Name/Name_0001`` -> ``Name/Name_0001``):
    the names the dataset's own files use (pairs, attributes, partitions)."""
    return np.array([i.partition("/")[2] for i in np.asarray(image_ids).astype(str)])


def attributes_of(image_ids: np.ndarray, path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(attributes of the images the file lists, in order; which of ``image_ids`` those are).

    Image ids carry the image folder (``lfw/Name/Name_0001``); attribute files name images
    within it (``Name/Name_0001.jpg``).
    """
    table = read_celeba_attributes(path)
    table.index = _file_keys(table.pop("image"))
    within = within_folder(image_ids)
    rows = np.isin(within, table.index)
    if not rows.any():
        raise ValueError(f"{path} lists none of the {len(image_ids)} images, e.g. "
                         f"{image_ids[0]!r}; is it this dataset's attribute file?")
    return table.loc[within[rows]], rows


def splits_of(image_ids: np.ndarray, path: str | Path) -> np.ndarray:
    """The CelebA partition (train / val / test) of each image id, from the dataset's
    ``list_eval_partition.txt``; ids are matched to file names as :func:`attributes_of` does."""
    table = read_celeba_partition(path)
    split = dict(zip(_file_keys(table["image"]), table["split"], strict=True))
    within = within_folder(image_ids)
    missing = [i for i in within if i not in split]
    if missing:
        raise ValueError(f"{path} gives no partition for {len(missing)} images, e.g. "
                         f"{missing[0]!r}; is it this dataset's partition file?")
    return np.array([split[i] for i in within])
