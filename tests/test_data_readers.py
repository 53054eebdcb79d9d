"""Tests for the CUB / Stanford Dogs / Stanford Cars readers.

Every fixture is written in the data set's own on-disk format: CUB's text files, Dogs'
MATLAB v5 lists and extension-less VOC XML, Cars' MATLAB v5 struct arrays with integer
(uint8/uint16) fields and 1-based classes, plus small real JPEG files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from fgdiscover.data.readers import (
    Annotations,
    detect_layout,
    read_annotations,
    read_cars,
    read_cub,
    read_dogs,
)
from fgdiscover.errors import FGDError


def _jpeg(path: Path, size=(12, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 200)).save(path, format="JPEG")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _one_line_error(call, *args) -> str:
    """Run ``call(*args)``, expect FGDError, return its message after checking it is one line."""
    with pytest.raises(FGDError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    return message


# --------------------------------------------------------------------------------------
# CUB-200-2011
# --------------------------------------------------------------------------------------

ALBATROSS = "001.Black_footed_Albatross/Black_Footed_Albatross_"
LAYSAN = "002.Laysan_Albatross/Laysan_Albatross_"
CUB_IMAGES = {  # id: (relative path under images/, class id, box, is_train)
    1: (ALBATROSS + "0046_18.jpg", 1, (60.0, 27.0, 325.0, 304.0), False),
    2: (ALBATROSS + "0009_34.jpg", 1, (139.5, 30.0, 153.0, 264.25), True),
    3: (LAYSAN + "0002_1027.jpg", 2, (14.0, 112.0, 388.0, 186.0), True),
    4: (LAYSAN + "0003_1033.jpg", 2, (0.0, 0.0, 1.0, 2.0), False),
}
CUB_CLASSES = {1: "001.Black_footed_Albatross", 2: "002.Laysan_Albatross"}


def make_cub(base: Path) -> Path:
    """CUB_200_2011-style folder; side files list ids in another order than images.txt."""
    for rel, *_ in CUB_IMAGES.values():
        _jpeg(base / "images" / rel)
    ids = sorted(CUB_IMAGES)
    _write(base / "images.txt", "".join(f"{i} {CUB_IMAGES[i][0]}\n" for i in ids))
    # classes.txt out of order: class_names must follow the class id, not the line order.
    _write(base / "classes.txt", "2 002.Laysan_Albatross\n1 001.Black_footed_Albatross\n")
    _write(
        base / "image_class_labels.txt",
        "".join(f"{i} {CUB_IMAGES[i][1]}\n" for i in reversed(ids)),
    )
    _write(
        base / "bounding_boxes.txt",
        "".join(
            f"{i} " + " ".join(f"{v:.2f}" for v in CUB_IMAGES[i][2]) + "\n" for i in [3, 1, 4, 2]
        ),
    )
    _write(
        base / "train_test_split.txt",
        "".join(f"{i} {int(CUB_IMAGES[i][3])}\n" for i in [2, 4, 1, 3]),
    )
    return base


def test_read_cub_values(tmp_path):
    base = make_cub(tmp_path / "CUB_200_2011")
    ann = read_cub(base)
    ids = sorted(CUB_IMAGES)
    assert isinstance(ann, Annotations) and ann.name == "cub"
    assert ann.files == ["images/" + CUB_IMAGES[i][0] for i in ids]
    assert ann.labels == [CUB_CLASSES[CUB_IMAGES[i][1]] for i in ids]
    assert ann.class_names == ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    assert ann.bboxes.dtype == np.float64 and ann.bboxes.shape == (4, 4)
    np.testing.assert_array_equal(ann.bboxes, [CUB_IMAGES[i][2] for i in ids])
    assert ann.is_train.dtype == bool
    assert ann.is_train.tolist() == [CUB_IMAGES[i][3] for i in ids]
    assert all((base / f).is_file() for f in ann.files)


def test_read_cub_from_parent_folder_prefixes_paths(tmp_path):
    make_cub(tmp_path / "CUB_200_2011")
    _write(tmp_path / "attributes.txt", "1 has_bill_shape::curved\n")  # ships beside it in the tgz
    assert detect_layout(tmp_path) == "cub"
    ann = read_annotations(tmp_path)
    assert ann.files[0] == "CUB_200_2011/images/" + CUB_IMAGES[1][0]
    assert all((tmp_path / f).is_file() for f in ann.files)


def test_cub_tolerates_blank_lines_and_crlf(tmp_path):
    base = make_cub(tmp_path / "cub")
    text = (base / "bounding_boxes.txt").read_text()
    (base / "bounding_boxes.txt").write_bytes(("\n" + text.replace("\n", "\r\n") + "\n\n").encode())
    np.testing.assert_array_equal(read_cub(base).bboxes[1], CUB_IMAGES[2][2])


@pytest.mark.parametrize(
    "file, content, expected",
    [
        ("bounding_boxes.txt", "1 60 27 325 304\n2 1 2 3\n3 1 2 3 4\n4 1 2 3 4\n",
         "bounding_boxes.txt line 2"),
        ("bounding_boxes.txt", "1 60 27 325 304\n2 1 2 3 4\n3 1 2 x 4\n4 1 2 3 4\n",
         "bounding_boxes.txt line 3"),
        ("train_test_split.txt", "1 1\n2 0\n3 2\n4 1\n", "train_test_split.txt line 3"),
        ("image_class_labels.txt", "1 1\n2 1\n3 2\n4 2\n9 1\n",
         "image_class_labels.txt line 5: image id 9"),
        ("image_class_labels.txt", "1 1\n2 1\n3 2\n",
         "image_class_labels.txt: no line for 1 image ids"),
        ("image_class_labels.txt", "1 1\n2 7\n3 2\n4 2\n",
         "image_class_labels.txt line 2: class 7"),
        ("images.txt", "1 a.jpg\n1 b.jpg\n", "images.txt line 2: image id 1 appears twice"),
        ("images.txt", "one 001.Black_footed_Albatross/x.jpg\n", "images.txt line 1"),
    ],
)
def test_cub_broken_files_name_file_and_line(tmp_path, file, content, expected):
    base = make_cub(tmp_path / "cub")
    _write(base / file, content)
    assert expected in _one_line_error(read_cub, base)


@pytest.mark.parametrize(
    "file", ["classes.txt", "bounding_boxes.txt", "train_test_split.txt", "image_class_labels.txt"]
)
def test_cub_missing_file_is_named(tmp_path, file):
    base = make_cub(tmp_path / "cub")
    (base / file).unlink()
    message = _one_line_error(read_annotations, base)
    assert "missing file" in message and file in message


def test_cub_missing_image_is_named(tmp_path):
    base = make_cub(tmp_path / "cub")
    (base / "images" / CUB_IMAGES[3][0]).unlink()
    message = _one_line_error(read_cub, base)
    assert "1 of 4 images" in message and CUB_IMAGES[3][0] in message


# --------------------------------------------------------------------------------------
# Stanford Dogs
# --------------------------------------------------------------------------------------

# Label numbers deliberately not in folder-name order: class_names must follow the label.
DOGS = [  # (file under Images/, label, boxes as (xmin, ymin, xmax, ymax), train)
    ("n02099601-golden_retriever/n02099601_3004.jpg", 1, [(25, 10, 276, 198)], True),
    ("n02099601-golden_retriever/n02099601_7.jpg", 1, [(5, 40, 50, 90), (30, 20, 120, 70)], False),
    ("n02085620-Chihuahua/n02085620_10074.jpg", 2, [(0, 3, 99, 80)], True),
    ("n02085620-Chihuahua/n02085620_588.jpg", 2, [(11, 12, 13, 14)], False),
]


def _dogs_xml(name: str, boxes) -> str:
    objects = "".join(
        "<object><name>dog</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for x0, y0, x1, y1 in boxes
    )
    return (
        f"<annotation><folder>{name.split('_')[0][1:]}</folder><filename>{name}</filename>"
        "<source><database>ImageNet database</database></source>"
        "<size><width>300</width><height>200</height><depth>3</depth></size>"
        f"<segment>0</segment>{objects}</annotation>"
    )


def _cell_column(strings) -> np.ndarray:
    """An (n, 1) cell array of strings, as MATLAB's lists store them."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = np.array([s])
    return cell


def _dogs_list_mat(path: Path, rows, drop=()) -> None:
    variables = {
        "file_list": _cell_column([r[0] for r in rows]),
        "annotation_list": _cell_column([r[0][: -len(".jpg")] for r in rows]),
        "labels": np.array([[float(r[1])] for r in rows]),
    }
    for key in drop:
        del variables[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, variables)


def make_dogs(base: Path, lists_dir: str = "lists") -> Path:
    for file, _, boxes, _ in DOGS:
        _jpeg(base / "Images" / file)
        _write(base / "Annotation" / file[: -len(".jpg")], _dogs_xml(Path(file).stem, boxes))
    lists = base / lists_dir
    _dogs_list_mat(lists / "file_list.mat", DOGS)
    _dogs_list_mat(lists / "train_list.mat", [r for r in DOGS if r[3]])
    _dogs_list_mat(lists / "test_list.mat", [r for r in DOGS if not r[3]])
    return base


def test_dogs_mat_fixture_mimics_real_structure(tmp_path):
    make_dogs(tmp_path)
    raw = scipy.io.loadmat(tmp_path / "lists" / "file_list.mat")
    assert raw["file_list"].shape == (4, 1) and raw["file_list"][0, 0][0] == DOGS[0][0]
    assert raw["labels"].dtype == np.float64 and raw["labels"].shape == (4, 1)


@pytest.mark.parametrize("lists_dir", ["lists", ""])
def test_read_dogs_values(tmp_path, lists_dir):
    base = make_dogs(tmp_path / "dogs", lists_dir)
    assert detect_layout(base) == "dogs"
    ann = read_dogs(base)
    assert ann.name == "dogs"
    assert ann.files == ["Images/" + r[0] for r in DOGS]
    assert ann.class_names == ["n02099601-golden_retriever", "n02085620-Chihuahua"]
    assert ann.labels == [ann.class_names[r[1] - 1] for r in DOGS]
    assert ann.is_train.tolist() == [r[3] for r in DOGS]
    expected = [
        (25, 10, 251, 188),
        (5, 20, 115, 70),  # union of (5, 40)-(50, 90) and (30, 20)-(120, 70)
        (0, 3, 99, 77),
        (11, 12, 2, 2),
    ]
    np.testing.assert_array_equal(ann.bboxes, np.array(expected, dtype=np.float64))
    assert all((base / f).is_file() for f in ann.files)


def test_read_dogs_from_parent_folder(tmp_path):
    make_dogs(tmp_path / "StanfordDogs")
    ann = read_annotations(tmp_path)
    assert ann.name == "dogs" and ann.files[2] == "StanfordDogs/Images/" + DOGS[2][0]


def test_dogs_missing_train_list(tmp_path):
    base = make_dogs(tmp_path)
    (base / "lists" / "train_list.mat").unlink()
    assert "train_list.mat" in _one_line_error(read_dogs, base)


def test_dogs_mat_missing_field(tmp_path):
    base = make_dogs(tmp_path)
    _dogs_list_mat(base / "lists" / "file_list.mat", DOGS, drop=("labels",))
    message = _one_line_error(read_annotations, base)
    assert "file_list.mat" in message and "'labels'" in message


def test_dogs_label_on_two_breeds(tmp_path):
    base = make_dogs(tmp_path)
    rows = [(f, 1 if i < 3 else 2, b, t) for i, (f, _, b, t) in enumerate(DOGS)]
    _dogs_list_mat(base / "lists" / "file_list.mat", rows)
    assert "label 1 is given to both" in _one_line_error(read_dogs, base)


def test_dogs_train_file_not_in_file_list(tmp_path):
    base = make_dogs(tmp_path)
    _dogs_list_mat(base / "lists" / "train_list.mat", [("n099-x/n099_1.jpg", 1, None, True)])
    message = _one_line_error(read_dogs, base)
    assert "train_list.mat" in message and "n099-x/n099_1.jpg" in message


@pytest.mark.parametrize(
    "xml, expected",
    [
        ("<annotation><size><width>3</width></size></annotation>", "no <object><bndbox>"),
        ("<annotation><object><bndbox><xmin>1</xmin></bndbox></object></annotation>",
         "lacks a numeric"),
        ("<annotation><object>", "cannot read"),
    ],
)
def test_dogs_bad_annotation_xml(tmp_path, xml, expected):
    base = make_dogs(tmp_path)
    _write(base / "Annotation" / DOGS[1][0][: -len(".jpg")], xml)
    message = _one_line_error(read_dogs, base)
    assert expected in message and "n02099601_7" in message


def test_dogs_corrupt_mat_file(tmp_path):
    base = make_dogs(tmp_path)
    (base / "lists" / "file_list.mat").write_bytes(b"not a mat file at all" * 10)
    assert "file_list.mat" in _one_line_error(read_dogs, base)


# --------------------------------------------------------------------------------------
# Stanford Cars
# --------------------------------------------------------------------------------------

CAR_CLASSES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8 Coupe 2012"]
CARS = [  # (image name, x1, y1, x2, y2 as MATLAB 1-based inclusive pixels, class 1.., test)
    ("000001.jpg", 39, 116, 569, 375, 1, 0),
    ("000002.jpg", 36, 116, 868, 587, 3, 1),
    ("000003.jpg", 85, 109, 601, 381, 2, 0),
    ("000004.jpg", 1, 1, 12, 8, 3, 1),
]


def _matlab_int(value: int) -> np.ndarray:
    """A 1x1 integer array of the smallest unsigned type, as the Cars .mat files hold."""
    return np.array([[value]], dtype=np.uint8 if value < 256 else np.uint16)


def _cars_struct(rows, fields) -> np.ndarray:
    """A 1xN MATLAB struct array with the given fields."""
    struct = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for j, row in enumerate(rows):
        struct[0, j] = tuple(row[f] for f in fields)
    return struct


def _class_cell(names) -> np.ndarray:
    cell = np.empty((1, len(names)), dtype=object)
    cell[0, :] = names
    return cell


ANNOS_FIELDS = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")
DEVKIT_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")


def _car_row(name, x1, y1, x2, y2, cls, test, image_dir="car_ims"):
    row = {f"bbox_{k}": _matlab_int(v) for k, v in zip(("x1", "y1", "x2", "y2"), (x1, y1, x2, y2))}
    row.update({"class": _matlab_int(cls), "test": _matlab_int(test),
                "relative_im_path": f"{image_dir}/{name}", "fname": name})
    return row


def _expected_boxes(rows) -> np.ndarray:
    # 1-based inclusive corners -> 0-based x, y and inclusive widths.
    boxes = [(x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1) for _, x1, y1, x2, y2, *_ in rows]
    return np.array(boxes, dtype=np.float64)


def make_cars_annos(base: Path, rows=CARS, fields=ANNOS_FIELDS) -> Path:
    for name, *_ in rows:
        _jpeg(base / "car_ims" / name)
    base.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(base / "cars_annos.mat", {
        "annotations": _cars_struct([_car_row(*r) for r in rows], fields),
        "class_names": _class_cell(CAR_CLASSES),
    })
    return base


def test_cars_mat_fixture_mimics_real_structure(tmp_path):
    base = make_cars_annos(tmp_path)
    raw = scipy.io.loadmat(base / "cars_annos.mat")
    assert raw["annotations"].shape == (1, 4) and raw["class_names"].shape == (1, 3)
    assert raw["annotations"][0, 1]["bbox_x2"].dtype == np.uint16
    assert raw["annotations"][0, 1]["relative_im_path"][0] == "car_ims/000002.jpg"


def test_read_cars_annos_values(tmp_path):
    base = make_cars_annos(tmp_path / "cars")
    assert detect_layout(base) == "cars"
    ann = read_cars(base)
    assert ann.name == "cars"
    assert ann.files == [f"car_ims/{r[0]}" for r in CARS]
    assert ann.class_names == CAR_CLASSES
    assert ann.labels == [CAR_CLASSES[r[5] - 1] for r in CARS]
    assert ann.is_train.tolist() == [r[6] == 0 for r in CARS]
    assert ann.bboxes.dtype == np.float64
    np.testing.assert_array_equal(ann.bboxes, _expected_boxes(CARS))
    np.testing.assert_array_equal(ann.bboxes[0], [38, 115, 531, 260])


def test_read_cars_annos_single_image(tmp_path):
    # squeeze_me turns a 1x1 struct and a 1x1 cell into scalars; the reader must not care.
    base = make_cars_annos(tmp_path, rows=CARS[:1])
    ann = read_annotations(base)
    assert ann.files == ["car_ims/000001.jpg"] and ann.bboxes.shape == (1, 4)


def make_cars_devkit(base: Path, devkit: str, test_annos_dir: str) -> Path:
    """Devkit form; train = rows with test 0, test = rows with test 1."""
    train = [r for r in CARS if r[6] == 0]
    test = [r for r in CARS if r[6] == 1]
    for split, rows in (("train", train), ("test", test)):
        for r in rows:
            _jpeg(base / f"cars_{split}" / r[0])
    (base / devkit).mkdir(parents=True, exist_ok=True)
    (base / test_annos_dir).mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(base / devkit / "cars_meta.mat", {"class_names": _class_cell(CAR_CLASSES)})
    scipy.io.savemat(base / devkit / "cars_train_annos.mat",
                     {"annotations": _cars_struct([_car_row(*r) for r in train], DEVKIT_FIELDS)})
    unlabelled = [dict(_car_row(*r)) for r in test]
    scipy.io.savemat(base / devkit / "cars_test_annos.mat", {"annotations": _cars_struct(
        unlabelled, ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "fname"))})
    scipy.io.savemat(base / test_annos_dir / "cars_test_annos_withlabels.mat",
                     {"annotations": _cars_struct([_car_row(*r) for r in test], DEVKIT_FIELDS)})
    return base


@pytest.mark.parametrize(
    "devkit, test_annos_dir",
    [("devkit", "."), ("devkit", "devkit"), (".", ".")],
    ids=["torchvision", "all-in-devkit", "flat"],
)
def test_read_cars_devkit_values(tmp_path, devkit, test_annos_dir):
    base = make_cars_devkit(tmp_path / "stanford_cars", devkit, test_annos_dir)
    ann = read_annotations(base)
    order = [r for r in CARS if r[6] == 0] + [r for r in CARS if r[6] == 1]
    assert ann.name == "cars"
    assert ann.files == ["cars_train/000001.jpg", "cars_train/000003.jpg",
                         "cars_test/000002.jpg", "cars_test/000004.jpg"]
    assert ann.is_train.tolist() == [True, True, False, False]
    assert ann.labels == [CAR_CLASSES[r[5] - 1] for r in order]
    np.testing.assert_array_equal(ann.bboxes, _expected_boxes(order))
    assert all((base / f).is_file() for f in ann.files)


def test_read_cars_devkit_from_parent_and_nested_image_dir(tmp_path):
    base = make_cars_devkit(tmp_path / "stanford_cars", "devkit", ".")
    nested = base / "cars_train" / "cars_train"
    nested.mkdir()
    for f in (base / "cars_train").glob("*.jpg"):
        f.rename(nested / f.name)
    ann = read_cars(tmp_path)
    assert ann.files[0] == "stanford_cars/cars_train/cars_train/000001.jpg"
    assert all((tmp_path / f).is_file() for f in ann.files)


def test_cars_annos_missing_field(tmp_path):
    fields = tuple(f for f in ANNOS_FIELDS if f != "bbox_y2")
    base = make_cars_annos(tmp_path, fields=fields)
    message = _one_line_error(read_cars, base)
    assert "cars_annos.mat" in message and "'bbox_y2'" in message


def test_cars_class_out_of_range(tmp_path):
    rows = CARS[:1] + [("000002.jpg", 1, 1, 5, 5, 4, 0)]
    base = make_cars_annos(tmp_path, rows=rows)
    assert "class entry 2 is 4, not a class in 1..3" in _one_line_error(read_cars, base)


def test_cars_devkit_without_labelled_test_file(tmp_path):
    base = make_cars_devkit(tmp_path, "devkit", ".")
    (base / "cars_test_annos_withlabels.mat").unlink()
    message = _one_line_error(read_cars, base)
    assert "cars_test_annos_withlabels.mat" in message and "no labels" in message


def test_cars_missing_image(tmp_path):
    base = make_cars_annos(tmp_path)
    (base / "car_ims" / "000003.jpg").unlink()
    assert "car_ims/000003.jpg" in _one_line_error(read_cars, base)


# --------------------------------------------------------------------------------------
# Detection and dispatch
# --------------------------------------------------------------------------------------


def test_plain_image_folder_is_not_a_layout(tmp_path):
    _jpeg(tmp_path / "cats" / "a.jpg")
    _jpeg(tmp_path / "dogs" / "b.jpg")
    assert detect_layout(tmp_path) is None
    assert read_annotations(tmp_path) is None
    # images.txt alone is too common a name to mean CUB.
    _write(tmp_path / "images.txt", "1 cats/a.jpg\n")
    assert detect_layout(tmp_path) is None


def test_several_data_sets_under_one_folder(tmp_path):
    make_cub(tmp_path / "CUB_200_2011")
    make_cars_annos(tmp_path / "cars")
    message = _one_line_error(detect_layout, tmp_path)
    assert "CUB_200_2011/ (cub)" in message and "cars/ (cars)" in message


def test_missing_root_and_wrong_reader(tmp_path):
    assert "not found" in _one_line_error(read_annotations, tmp_path / "nowhere")
    make_cub(tmp_path / "cub")
    assert "no Stanford Dogs data set" in _one_line_error(read_dogs, tmp_path / "cub")
