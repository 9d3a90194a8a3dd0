"""The five dataset layouts GAN Compression trains and evaluates on, behind ``build_dataset``.

modes (folder layouts):
  "labelmap"    <root>/<split>/<stem>.jpg photo + <stem>.png class-id label map (facades, camvid)
  "aligned"     <root>/<split>/*.jpg|png, A|B side by side (pix2pix: edges2shoes, maps, ...)
  "unaligned"   <root>/<split>A/, <root>/<split>B/ drawn independently (CycleGAN)
  "cityscapes"  <root>/gtFine/<split>/<city>/*_gtFine_{labelIds,instanceIds}.png and
                <root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png (GauGAN)
  "single"      a folder of inputs only (inference / CycleGAN evaluation), <root>/<split> or <root>

Every item is a dict: "A" (generator input), "B" (target photo; absent in "single"), "label"
(int64 class ids, label-map datasets only), "A_path", "B_path". An item is a pure function of
(seed, epoch, index): ``ds[i]`` is epoch 0; ``make_dataloader`` asks for ``ds[(i, epoch)]`` so
each epoch gets fresh crops/flips, reproducibly, whatever the number of workers.
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from compress.data.images import (IMAGE_EXTENSIONS, LABEL_EXTENSIONS, PHOTO_EXTENSIONS, list_images,
                                  read_instance_map, read_label, read_rgb, stem_of)
from compress.data.transforms import (INPUT_ENCODINGS, Size, as_hw, draw_transform, instance_edges,
                                      label_tensor, photo_tensor)
from compress.common.palettes import Palette, load_palette

MODES = ("labelmap", "aligned", "unaligned", "cityscapes", "single")
DIRECTIONS = ("AtoB", "BtoA")
Item = Dict[str, Union[torch.Tensor, str]]


# ----------------------------------------------------------------------------- layout checks

def guess_mode(root: str, split: str = "train") -> Optional[str]:
    """The mode a folder's layout looks like (for error messages), or None."""
    if os.path.isdir(os.path.join(root, "gtFine")) and os.path.isdir(os.path.join(root, "leftImg8bit")):
        return "cityscapes"
    if os.path.isdir(os.path.join(root, split + "A")) or os.path.isdir(os.path.join(root, "trainA")):
        return "unaligned"
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        return None
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    photos = {os.path.splitext(n)[0] for n in names if n.lower().endswith(PHOTO_EXTENSIONS)}
    labels = {os.path.splitext(n)[0] for n in names if n.lower().endswith(LABEL_EXTENSIONS)}
    if photos & labels:
        return "labelmap"
    if not names:
        return None
    try:
        width, height = read_rgb(os.path.join(folder, sorted(names)[0])).size
    except ValueError:
        return None
    return "aligned" if width >= 1.8 * height else "single"


def _layout_hint(root: str, split: str, mode: str) -> str:
    guess = guess_mode(root, split)
    if guess and guess != mode:
        return f"this looks like a mode='{guess}' dataset, not mode='{mode}'"
    return {"labelmap": f"expected {root}/{split}/<stem>.jpg photos with <stem>.png label maps",
            "aligned": f"expected {root}/{split}/*.jpg side-by-side A|B images",
            "unaligned": f"expected folders {root}/{split}A and {root}/{split}B",
            "cityscapes": f"expected {root}/gtFine/{split}/<city>/ and {root}/leftImg8bit/{split}/<city>/",
            "single": f"expected images in {root}/{split} or {root}"}[mode]


def _pair_by_stem(first: Dict[str, str], second: Dict[str, str], what: Tuple[str, str]) -> List[str]:
    """Stems present in both {stem: path} maps; ValueError naming files that lack a partner."""
    lonely = ([f"{path} has no {what[1]}" for s, path in sorted(first.items()) if s not in second]
              + [f"{path} has no {what[0]}" for s, path in sorted(second.items()) if s not in first])
    if lonely:
        more = f" (and {len(lonely) - 5} more)" if len(lonely) > 5 else ""
        raise ValueError("unpaired files: " + "; ".join(lonely[:5]) + more + f"; every {what[0]} needs a "
                         f"{what[1]} with the same name, remove or add the missing files")
    return sorted(first)


def _select(stems: List[str], wanted: Optional[Sequence[str]], max_items: Optional[int],
            where: str, allow_partial: bool = False) -> List[str]:
    """Restrict sorted ``stems`` to ``wanted`` (ValueError on unknown ones), then truncate."""
    if wanted is not None:
        wanted_set = set(wanted)
        if not allow_partial:
            missing = sorted(wanted_set - set(stems))
            if missing:
                raise ValueError(f"{where}: requested stems not found: {missing[:5]}"
                                 + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""))
        stems = [s for s in stems if s in wanted_set]
    if max_items is not None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        stems = stems[:max_items]
    if not stems:
        raise ValueError(f"{where}: no items left after selecting stems / max_items")
    return stems


# ----------------------------------------------------------------------------- datasets

class _PairedBase(Dataset):
    """Shared indexing, per-item random generator and transform drawing."""

    mode = ""

    def __init__(self, load_hw: Optional[Tuple[int, int]], crop_hw: Optional[Tuple[int, int]],
                 flip: bool, random_crop: bool, seed: int):
        self.load_hw, self.crop_hw = load_hw, crop_hw
        self.flip, self.random_crop, self.seed = flip, random_crop, seed
        self.stems: List[str] = []

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Item:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        rng = np.random.default_rng([int(self.seed), int(epoch), index])
        return self._item(index, rng)

    def _item(self, index: int, rng: np.random.Generator) -> Item:
        raise NotImplementedError

    def _transform(self, image_hw: Tuple[int, int], rng: np.random.Generator, source: str):
        return draw_transform(image_hw, self.load_hw, self.crop_hw, self.random_crop, self.flip, rng, source)


class LabelMapDataset(_PairedBase):
    """<stem>.jpg photo + <stem>.png class-id map. AtoB: label -> photo; BtoA: photo -> label colours."""

    mode = "labelmap"

    def __init__(self, root: str, split: str, palette: Palette, direction: str, input_encoding: str,
                 stems: Optional[Sequence[str]], max_items: Optional[int], **base):
        super().__init__(**base)
        self.palette, self.direction, self.input_encoding = palette, direction, input_encoding
        folder = os.path.join(root, split)
        hint = _layout_hint(root, split, self.mode)
        paths = list_images(folder, PHOTO_EXTENSIONS + LABEL_EXTENSIONS, "photos or label maps", hint)
        photos = {stem_of(p): p for p in paths if p.lower().endswith(PHOTO_EXTENSIONS)}
        labels = {stem_of(p): p for p in paths if p.lower().endswith(LABEL_EXTENSIONS)}
        if not labels or not photos:
            missing = ".png label maps" if not labels else ".jpg photos"
            raise ValueError(f"{folder}: no {missing} here; {hint}")
        self.stems = _select(_pair_by_stem(photos, labels, ("photo (.jpg)", "label map (.png)")),
                             stems, max_items, folder)
        self.photo_paths = [photos[s] for s in self.stems]
        self.label_paths = [labels[s] for s in self.stems]

    def _item(self, index: int, rng: np.random.Generator) -> Item:
        photo_path, label_path = self.photo_paths[index], self.label_paths[index]
        ids = read_label(label_path, self.palette)
        photo = read_rgb(photo_path)
        if photo.size != (ids.shape[1], ids.shape[0]):
            raise ValueError(f"{label_path} is {ids.shape[1]}x{ids.shape[0]} but its photo {photo_path} is "
                             f"{photo.size[0]}x{photo.size[1]} (width x height); they must match pixel "
                             "for pixel")
        transform = self._transform(ids.shape, rng, label_path)
        ids = transform.ids(ids)
        photo_t = photo_tensor(transform.photo(photo))
        label = torch.from_numpy(ids.astype(np.int64))
        if self.direction == "AtoB":
            return {"A": label_tensor(ids, self.palette, self.input_encoding), "B": photo_t, "label": label,
                    "A_path": label_path, "B_path": photo_path}
        return {"A": photo_t, "B": label_tensor(ids, self.palette, "color"), "label": label,
                "A_path": photo_path, "B_path": label_path}


class AlignedDataset(_PairedBase):
    """pix2pix A|B images. With a palette, the (input-side) A half is a colour label map:
    it maps to ids by nearest palette colour and is re-encoded (and "label" is returned)."""

    mode = "aligned"

    def __init__(self, root: str, split: str, direction: str, palette: Optional[Palette], input_encoding: str,
                 stems: Optional[Sequence[str]], max_items: Optional[int], **base):
        super().__init__(**base)
        self.direction, self.palette, self.input_encoding = direction, palette, input_encoding
        folder = os.path.join(root, split)
        hint = _layout_hint(root, split, self.mode)
        if guess_mode(root, split) == "labelmap":
            raise ValueError(f"{folder}: {hint} (photos and .png label maps share names)")
        paths = list_images(folder, IMAGE_EXTENSIONS, "A|B images", hint)
        by_stem = {stem_of(p): p for p in paths}
        self.stems = _select(sorted(by_stem), stems, max_items, folder)
        self.paths = [by_stem[s] for s in self.stems]

    def _item(self, index: int, rng: np.random.Generator) -> Item:
        path = self.paths[index]
        pair = read_rgb(path)
        width, height = pair.size
        if width < 2:
            raise ValueError(f"{path}: {width}x{height} is too narrow to hold A|B halves side by side")
        half = width // 2
        left, right = pair.crop((0, 0, half, height)), pair.crop((half, 0, 2 * half, height))
        source, target = (left, right) if self.direction == "AtoB" else (right, left)
        transform = self._transform((height, half), rng, path)
        item: Item = {"B": photo_tensor(transform.photo(target)), "A_path": path, "B_path": path}
        if self.palette is None:
            item["A"] = photo_tensor(transform.photo(source))
            return item
        ids = transform.ids(self.palette.to_ids(np.asarray(source)).astype(np.int32))
        item["A"] = label_tensor(ids, self.palette, self.input_encoding)
        item["label"] = torch.from_numpy(ids.astype(np.int64))
        return item


class UnalignedDataset(_PairedBase):
    """CycleGAN: item i is A[i % len(A)] with a B image drawn uniformly at random (per item)."""

    mode = "unaligned"

    def __init__(self, root: str, split: str, direction: str,
                 stems: Optional[Sequence[str]], max_items: Optional[int], **base):
        super().__init__(**base)
        hint = _layout_hint(root, split, self.mode)
        folders = [os.path.join(root, split + "A"), os.path.join(root, split + "B")]
        if direction == "BtoA":
            folders.reverse()
        domains = []
        for folder in folders:
            by_stem = {stem_of(p): p for p in list_images(folder, IMAGE_EXTENSIONS, "images", hint)}
            chosen = _select(sorted(by_stem), stems, max_items, folder, allow_partial=True)
            domains.append([by_stem[s] for s in chosen])
        if stems is not None:
            found = {stem_of(p) for paths in domains for p in paths}
            missing = sorted(set(stems) - found)
            if missing:
                raise ValueError(f"{folders[0]}, {folders[1]}: requested stems not found: {missing[:5]}")
        self.A_paths, self.B_paths = domains
        self.stems = sorted({stem_of(p) for p in self.A_paths + self.B_paths})

    def __len__(self) -> int:
        return max(len(self.A_paths), len(self.B_paths))

    def _item(self, index: int, rng: np.random.Generator) -> Item:
        a_path = self.A_paths[index % len(self.A_paths)]
        b_path = self.B_paths[int(rng.integers(len(self.B_paths)))]
        tensors = []
        for path in (a_path, b_path):
            image = read_rgb(path)
            transform = self._transform((image.size[1], image.size[0]), rng, path)
            tensors.append(photo_tensor(transform.photo(image)))
        return {"A": tensors[0], "B": tensors[1], "A_path": a_path, "B_path": b_path}


class CityscapesDataset(_PairedBase):
    """GauGAN's Cityscapes reader: labelIds (35 classes) + optional instance edges -> leftImg8bit photo."""

    mode = "cityscapes"
    LABEL_SUFFIX = "_gtFine_labelIds.png"
    INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
    PHOTO_SUFFIX = "_leftImg8bit.png"

    def __init__(self, root: str, split: str, palette: Palette, input_encoding: str, instance_edges: bool,
                 stems: Optional[Sequence[str]], max_items: Optional[int], **base):
        super().__init__(**base)
        self.palette, self.input_encoding, self.instance_edges = palette, input_encoding, instance_edges
        hint = _layout_hint(root, split, self.mode)
        gt_dir, photo_dir = os.path.join(root, "gtFine", split), os.path.join(root, "leftImg8bit", split)
        labels = self._scan(gt_dir, self.LABEL_SUFFIX, hint)
        photos = self._scan(photo_dir, self.PHOTO_SUFFIX, hint)
        paired = _pair_by_stem(labels, photos, ("label map (" + self.LABEL_SUFFIX + ")",
                                                "photo (" + self.PHOTO_SUFFIX + ")"))
        self.stems = _select(paired, stems, max_items, gt_dir)
        self.label_paths = [labels[s] for s in self.stems]
        self.photo_paths = [photos[s] for s in self.stems]
        self.instance_paths = [p[:-len(self.LABEL_SUFFIX)] + self.INSTANCE_SUFFIX for p in self.label_paths]
        if instance_edges:
            absent = [p for p in self.instance_paths if not os.path.isfile(p)]
            if absent:
                raise ValueError(f"missing instance maps needed by instance_edges=True: {absent[:3]}"
                                 + (f" (and {len(absent) - 3} more)" if len(absent) > 3 else ""))

    @staticmethod
    def _scan(folder: str, suffix: str, hint: str) -> Dict[str, str]:
        if not os.path.isdir(folder):
            raise ValueError(f"{folder}: no such folder; {hint}")
        found = {}
        for city in sorted(os.listdir(folder)):
            city_dir = os.path.join(folder, city)
            if os.path.isdir(city_dir):
                for name in sorted(os.listdir(city_dir)):
                    if name.endswith(suffix):
                        found[name[:-len(suffix)]] = os.path.join(city_dir, name)
        if not found:
            raise ValueError(f"{folder}: no <city>/*{suffix} files; {hint}")
        return found

    def _item(self, index: int, rng: np.random.Generator) -> Item:
        label_path, photo_path = self.label_paths[index], self.photo_paths[index]
        ids = read_label(label_path, self.palette)
        photo = read_rgb(photo_path)
        if photo.size != (ids.shape[1], ids.shape[0]):
            raise ValueError(f"{label_path} and {photo_path} differ in size; they must match pixel for pixel")
        transform = self._transform(ids.shape, rng, label_path)
        ids = transform.ids(ids)
        edges = None
        if self.instance_edges:
            instance = read_instance_map(self.instance_paths[index])
            if instance.shape != photo.size[::-1]:
                raise ValueError(f"{self.instance_paths[index]}: instance map size differs from {label_path}")
            edges = instance_edges(transform.ids(instance))
        return {"A": label_tensor(ids, self.palette, self.input_encoding, edges),
                "B": photo_tensor(transform.photo(photo)), "label": torch.from_numpy(ids.astype(np.int64)),
                "A_path": label_path, "B_path": photo_path}


class SingleDataset(_PairedBase):
    """Inputs only. With a palette the inputs are the folder's .png label maps (ids, encoded
    like "labelmap" A); without, every image file is an input photo/sketch."""

    mode = "single"

    def __init__(self, root: str, split: str, palette: Optional[Palette], input_encoding: str,
                 stems: Optional[Sequence[str]], max_items: Optional[int], **base):
        super().__init__(**base)
        self.palette, self.input_encoding = palette, input_encoding
        folder = os.path.join(root, split) if os.path.isdir(os.path.join(root, split)) else root
        # with a palette the files are label maps (PNG ids); photos beside them are not inputs
        paths = list_images(folder, LABEL_EXTENSIONS if palette else IMAGE_EXTENSIONS,
                            "label maps" if palette else "images", _layout_hint(root, split, self.mode))
        by_stem = {stem_of(p): p for p in paths}
        self.stems = _select(sorted(by_stem), stems, max_items, folder)
        self.paths = [by_stem[s] for s in self.stems]

    def _item(self, index: int, rng: np.random.Generator) -> Item:
        path = self.paths[index]
        if self.palette is None:
            image = read_rgb(path)
            transform = self._transform((image.size[1], image.size[0]), rng, path)
            return {"A": photo_tensor(transform.photo(image)), "A_path": path}
        ids = read_label(path, self.palette)
        ids = self._transform(ids.shape, rng, path).ids(ids)
        return {"A": label_tensor(ids, self.palette, self.input_encoding),
                "label": torch.from_numpy(ids.astype(np.int64)), "A_path": path}


# ----------------------------------------------------------------------------- factory

def build_dataset(mode: str, root: str, split: str = "train", *, direction: str = "AtoB",
                  load_size: Size = None, crop_size: Size = None, flip: bool = False,
                  palette: Union[str, Palette, None] = None, input_encoding: str = "color",
                  instance_edges: bool = False, stems: Optional[Sequence[str]] = None,
                  max_items: Optional[int] = None, seed: int = 0,
                  random_crop: Optional[bool] = None) -> Dataset:
    """Build a dataset of ``mode`` (see the module docstring) from ``root``/``split``.

    load_size / crop_size: int (square) or (height, width); resize to load_size, then crop
    crop_size (random when ``random_crop``, default: split == "train"; centred otherwise).
    None keeps the size. ``flip``: random horizontal flips. ``palette``: a palette name in
    assets/palettes or a Palette; required for "labelmap", defaults to "cityscapes" for
    "cityscapes". ``input_encoding``: "color" (palette RGB in [-1, 1]) or "onehot" (SPADE);
    ``instance_edges`` adds GauGAN's instance-boundary channel ("cityscapes" + "onehot" only).
    ``stems`` restricts to those file stems (see ``holdout_split``); ``max_items`` truncates.
    """
    if mode not in MODES:
        raise ValueError(f"unknown dataset mode {mode!r}; choose one of {', '.join(MODES)}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
    if input_encoding not in INPUT_ENCODINGS:
        raise ValueError(f"input_encoding must be one of {INPUT_ENCODINGS}, got {input_encoding!r}")
    if not os.path.isdir(root):
        raise ValueError(f"{root}: dataset folder not found")
    if mode == "cityscapes" and palette is None:
        palette = "cityscapes"
    if isinstance(palette, str):
        palette = load_palette(palette)
    if mode == "labelmap" and palette is None:
        raise ValueError(f"{root}: mode 'labelmap' needs palette= (one of facades, camvid, cityscapes, ...)")
    if input_encoding == "onehot" and palette is None:
        raise ValueError(f"{root}: input_encoding='onehot' needs a palette (class count and ids)")
    if mode == "unaligned" and (palette is not None or input_encoding != "color"):
        raise ValueError("mode 'unaligned' reads plain images: use palette=None, input_encoding='color'")
    if instance_edges and (mode != "cityscapes" or input_encoding != "onehot"):
        raise ValueError("instance_edges needs instance maps and a one-hot input: only mode='cityscapes' "
                         "with input_encoding='onehot' has them")
    if mode == "cityscapes" and direction != "AtoB":
        raise ValueError("mode 'cityscapes' is label -> photo only (direction='AtoB')")
    base = dict(load_hw=as_hw(load_size, "load_size"), crop_hw=as_hw(crop_size, "crop_size"), flip=bool(flip),
                random_crop=(split == "train") if random_crop is None else bool(random_crop), seed=int(seed))
    select = dict(stems=stems, max_items=max_items)
    if mode == "labelmap":
        return LabelMapDataset(root, split, palette, direction, input_encoding, **select, **base)
    if mode == "aligned":
        return AlignedDataset(root, split, direction, palette, input_encoding, **select, **base)
    if mode == "unaligned":
        return UnalignedDataset(root, split, direction, **select, **base)
    if mode == "cityscapes":
        return CityscapesDataset(root, split, palette, input_encoding, instance_edges, **select, **base)
    return SingleDataset(root, split, palette, input_encoding, **select, **base)


def default_input_kind(input_kind: Optional[str], dataset_mode: str, palette: Optional[str],
                       direction: str) -> str:
    """What a generator trained on this data takes as input, for its metadata: ``input_kind`` when
    set, else "label" for label maps translated A->B, else "image"."""
    if input_kind:
        return input_kind
    labels_in = dataset_mode in ("labelmap", "cityscapes") or bool(palette)
    return "label" if labels_in and direction == "AtoB" else "image"


def holdout_split(stems: Sequence[str], n_holdout: int, seed: int = 0) -> Tuple[List[str], List[str]]:
    """Deterministically split ``stems`` into (train, held-out) sorted lists, ``n_holdout`` held out
    (the compression search evaluates on a held-out part of train, like the official train1/train2)."""
    unique = sorted(set(stems))
    if not 0 <= n_holdout < len(unique):
        raise ValueError(f"n_holdout must be in [0, {len(unique) - 1}] for {len(unique)} stems, "
                         f"got {n_holdout}")
    order = np.random.default_rng(seed).permutation(len(unique))
    held = {unique[i] for i in order[:n_holdout]}
    return [s for s in unique if s not in held], [s for s in unique if s in held]
