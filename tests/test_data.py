"""Tests of tinymm.data: the grammar, the drawn scenes, the tokenizer, batching and the folder loader.

The scene tests look at the pixels, not at the code that drew them: a caption must be true of its
image (right colour, bigger when "large", on the left when "left of").
"""

import ast
import json
import pathlib
import warnings

import numpy as np
import pytest

from tinymm.data import (
    COLOURS,
    EDIT_KINDS,
    HELD_OUT_PAIRS,
    SHAPES,
    SIZES,
    ShapesCaptions,
    Tokenizer,
    batches,
    load_image_folder,
    one_edit_variants,
    parse_caption,
)
from tinymm.data.grammar import all_captions, caption_of, contains_held_out, two_object_captions

pytestmark = [pytest.mark.lesson07]

# Ideal directions of the six colours, to name the colour of a group of pixels by cosine similarity.
PURE_RGB = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=float)
LIT = 0.35  # a pixel whose brightest channel exceeds this belongs to an object, not the background


@pytest.fixture(scope="module")
def train():
    return ShapesCaptions("train", n=800, seed=0)


@pytest.fixture(scope="module")
def compositional():
    return ShapesCaptions("compositional", n=600, seed=0)


def colour_names_of(pixels):
    """(..., 3) RGB pixels -> the index in COLOURS of the nearest pure colour (by angle)."""
    unit = pixels / (np.linalg.norm(pixels, axis=-1, keepdims=True) + 1e-9)
    return np.argmax(unit @ (PURE_RGB / np.linalg.norm(PURE_RGB, axis=1, keepdims=True)).T, axis=-1)


def lit_mask(images):
    """(N, 3, H, W) -> (N, H, W) bool: pixels that belong to an object."""
    return images.max(axis=1) > LIT


# ---------------------------------------------------------------- grammar


def test_grammar_has_48_one_object_and_4512_two_object_captions():
    one = ShapesCaptions.one_object_captions()
    two = two_object_captions()
    assert len(one) == len(set(one)) == 48
    assert len(two) == len(set(two)) == 48 * 47 * 2 == 4512
    assert ShapesCaptions.all_captions() == one + two
    assert one[0] == "a small red circle"


def test_parse_caption_inverts_caption_of():
    for caption in all_captions()[::37]:
        scene = parse_caption(caption)
        assert caption_of(scene.objects, scene.relation) == caption
    scene = parse_caption("A Small red circle  LEFT of a large blue square")
    assert scene.relation == "left of"
    assert scene.objects[1] == ("large", "blue", "square")


@pytest.mark.parametrize("text", ["", "a red circle", "a small red circle beside a large blue square",
                                  "a small red circle left of a small red circle", "a small red circle left of"])
def test_parse_caption_rejects_what_the_grammar_cannot_say(text):
    with pytest.raises(ValueError):
        parse_caption(text)


def test_held_out_pairs_hold_out_each_colour_once():
    colours = [colour for colour, _ in HELD_OUT_PAIRS]
    shapes = [shape for _, shape in HELD_OUT_PAIRS]
    assert sorted(colours) == sorted(COLOURS)
    assert all(shape in SHAPES for shape in shapes)
    assert max(shapes.count(shape) for shape in SHAPES) <= 2


def test_one_edit_variants_of_a_two_object_caption():
    variants = one_edit_variants("a small red circle left of a large blue square")
    assert list(variants) == list(EDIT_KINDS)
    assert {kind: len(v) for kind, v in variants.items()} == {
        "colour": 10, "shape": 6, "size": 2, "relation": 1, "order": 1}
    assert variants["relation"] == ["a small red circle above a large blue square"]
    assert variants["order"] == ["a large blue square left of a small red circle"]
    assert "a small green circle left of a large blue square" in variants["colour"]
    assert "a small red circle left of a small blue square" in variants["size"]


def test_one_edit_variants_skip_edits_that_make_both_objects_the_same():
    variants = one_edit_variants("a small red circle above a small red square")
    # The shape edit square -> circle (or circle -> square) would name one object twice.
    assert len(variants["shape"]) == 4
    assert "a small red circle above a small red circle" not in variants["shape"]
    for kind_variants in variants.values():
        for variant in kind_variants:
            parse_caption(variant)  # every variant is a caption of the grammar
            assert variant != "a small red circle above a small red square"


def test_one_edit_variants_of_a_one_object_caption():
    variants = one_edit_variants("a large cyan cross")
    assert {kind: len(v) for kind, v in variants.items()} == {
        "colour": 5, "shape": 3, "size": 1, "relation": 0, "order": 0}
    assert variants["size"] == ["a small cyan cross"]


# ---------------------------------------------------------------- splits and sampling


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_iid_splits_never_show_a_held_out_pair(split):
    ds = ShapesCaptions(split, n=400, seed=3)
    assert not any(contains_held_out(caption) for caption in ds.captions)
    assert not ds.scenes["held_out"].any()


def test_every_compositional_scene_has_a_held_out_pair(compositional):
    assert all(contains_held_out(caption) for caption in compositional.captions)
    one_object = {c for c, k in zip(compositional.captions, compositional.scenes["n_objects"]) if k == 1}
    held_out_objects = {f"a {size} {colour} {shape}" for colour, shape in HELD_OUT_PAIRS for size in SIZES}
    assert one_object == held_out_objects


def test_captions_are_spread_uniformly_over_the_allowed_set():
    ds = ShapesCaptions("train", n=3600, seed=0, one_object_fraction=1.0)
    _, counts = np.unique(ds.captions, return_counts=True)
    assert len(counts) == 48 - 12  # every allowed one-object caption appears
    assert counts.min() > 60 and counts.max() < 140  # 100 expected for each


def test_one_object_fraction_sets_the_mix(train):
    assert (train.scenes["n_objects"] == 1).sum() == 400
    assert (ShapesCaptions("val", n=50, one_object_fraction=0.0).scenes["n_objects"] == 2).all()


def test_images_tokens_and_scenes_have_the_promised_shapes(train):
    assert train.images.shape == (800, 3, 32, 32) and train.images.dtype == np.float32
    assert train.images.min() >= 0.0 and train.images.max() <= 1.0
    assert train.tokens.shape == (800, 12) and train.tokens.dtype == np.int64
    assert len(train) == len(train.captions) == 800
    image, caption = train[5]
    assert image.shape == (3, 32, 32) and caption == train.captions[5]
    assert train.tokenizer.decode(train.tokens[:20]) == train.captions[:20]
    assert train.scenes["shape"].shape == (800, 2)
    one = train.scenes["n_objects"] == 1
    assert (train.scenes["shape"][one, 1] == -1).all() and (train.scenes["relation"][one] == -1).all()
    assert [train.all_captions()[i] for i in train.scenes["caption_index"][:20]] == train.captions[:20]


def test_same_seed_same_data_and_other_split_other_images():
    a = ShapesCaptions("val", n=64, seed=7)
    b = ShapesCaptions("val", n=64, seed=7)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert np.array_equal(a.tokens, b.tokens)
    other_split = ShapesCaptions("test", n=64, seed=7)
    other_seed = ShapesCaptions("val", n=64, seed=8)
    assert not np.allclose(a.images, other_split.images)
    assert not np.allclose(a.images, other_seed.images)
    assert a.tokenizer == other_split.tokenizer  # one vocabulary for every split


def test_no_two_images_are_identical_even_with_the_same_caption(train):
    flat = train.images.reshape(len(train), -1)
    assert len(np.unique(flat, axis=0)) == len(train)


@pytest.mark.parametrize("kwargs", [{"split": "training"}, {"n": 0}, {"seed": -1}, {"one_object_fraction": 1.5}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        ShapesCaptions(**kwargs)


# ---------------------------------------------------------------- the picture matches the caption


def test_one_object_pixels_have_the_caption_colour(train):
    one = np.flatnonzero(train.scenes["n_objects"] == 1)
    images = train.images[one]
    lit = lit_mask(images)
    mean_colour = (images * lit[:, None]).sum(axis=(2, 3)) / lit.sum(axis=(1, 2))[:, None]
    assert np.array_equal(colour_names_of(mean_colour), train.scenes["colour"][one, 0])


def test_large_objects_light_more_pixels_than_small_ones(train):
    one = np.flatnonzero(train.scenes["n_objects"] == 1)
    area = lit_mask(train.images[one]).sum(axis=(1, 2))
    large = train.scenes["size"][one, 0] == SIZES.index("large")
    assert area[~large].max() < area[large].min()
    assert area[large].mean() > 2 * area[~large].mean()


def test_shapes_fill_their_bounding_boxes_as_they_should(train):
    one = np.flatnonzero(train.scenes["n_objects"] == 1)
    lit = lit_mask(train.images[one])
    rows, cols = lit.any(axis=2), lit.any(axis=1)
    box_area = rows.sum(axis=1) * cols.sum(axis=1)
    fill = lit.sum(axis=(1, 2)) / box_area
    shape = train.scenes["shape"][one, 0]
    mean_fill = {name: fill[shape == k].mean() for k, name in enumerate(SHAPES)}
    # A square fills its box, a circle about pi/4 of it, a triangle or a cross about half.
    assert mean_fill["square"] > mean_fill["circle"] > max(mean_fill["triangle"], mean_fill["cross"])
    # A triangle points up: its lit pixels sit low in its box (a cross's sit in the middle).
    heights = lit.sum(axis=2)  # (n, H) lit pixels per row
    centre_of_mass = (heights * np.arange(32)).sum(axis=1) / heights.sum(axis=1)
    top = rows.argmax(axis=1)
    bottom = 31 - rows[:, ::-1].argmax(axis=1)
    relative_height = (centre_of_mass - top) / (bottom - top)
    assert relative_height[shape == SHAPES.index("triangle")].mean() > 0.6  # 2/3 for a perfect triangle
    assert abs(relative_height[shape == SHAPES.index("cross")].mean() - 0.5) < 0.05


def test_relations_put_the_first_object_left_of_or_above_the_second(train):
    scenes = train.scenes
    two = np.flatnonzero((scenes["n_objects"] == 2) & (scenes["colour"][:, 0] != scenes["colour"][:, 1]))
    assert len(two) > 300
    images = train.images[two]
    lit = lit_mask(images)
    names = colour_names_of(images.transpose(0, 2, 3, 1))  # (n, H, W)
    ys, xs = np.mgrid[0:32, 0:32]
    for n, i in enumerate(two):
        a = lit[n] & (names[n] == scenes["colour"][i, 0])
        b = lit[n] & (names[n] == scenes["colour"][i, 1])
        along = xs if scenes["relation"][i] == 0 else ys  # "left of" compares x, "above" compares y
        across = ys if scenes["relation"][i] == 0 else xs
        # The first object is well before the second along the relation's axis, and roughly in
        # line with it across (a triangle's weight sits low in its box, hence the slack).
        assert along[a].mean() + 6 < along[b].mean(), train.captions[i]
        assert abs(across[a].mean() - across[b].mean()) < 6, train.captions[i]


def test_objects_stay_inside_the_image_and_apart(train):
    scenes = train.scenes
    r, x, y = scenes["radius"], scenes["centre_x"], scenes["centre_y"]
    present = scenes["size"] >= 0
    assert (x[present] - r[present] >= 0).all() and (x[present] + r[present] <= 32).all()
    assert (y[present] - r[present] >= 0).all() and (y[present] + r[present] <= 32).all()
    two = scenes["n_objects"] == 2
    gap = np.maximum(np.abs(x[two, 0] - x[two, 1]), np.abs(y[two, 0] - y[two, 1])) - r[two, 0] - r[two, 1]
    assert gap.min() >= 1.5  # the boxes around the two objects never touch


# ---------------------------------------------------------------- tokenizer


@pytest.mark.lesson08
def test_tokenizer_round_trips_every_caption_of_the_grammar():
    tokenizer = ShapesCaptions("train", n=1).tokenizer
    captions = all_captions()
    ids = tokenizer.encode(captions)
    assert ids.shape == (4560, 12) and ids.dtype == np.int64
    assert tokenizer.vocab_size == 20
    assert (ids[:, 0] == tokenizer.bos_id).all()
    assert ((ids == tokenizer.eos_id).sum(axis=1) == 1).all()
    assert (ids != tokenizer.unk_id).all()
    assert tokenizer.decode(ids) == captions


@pytest.mark.lesson08
def test_tokenizer_layout_and_decode_inputs():
    tokenizer = Tokenizer(["a", "red", "circle"], max_len=6)
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)
    ids = tokenizer.encode(["a red circle", "Circle"])
    assert ids.tolist() == [[1, 4, 5, 6, 2, 0], [1, 6, 2, 0, 0, 0]]
    assert tokenizer.decode(ids[0]) == ["a red circle"]  # one row (L,)
    assert tokenizer.decode([[1, 5, 2, 6, 6, 0]]) == ["red"]  # a list; reading stops at <eos>
    with pytest.raises(ValueError, match="ids must lie in"):
        tokenizer.decode([1, 99])


@pytest.mark.lesson08
def test_tokenizer_warns_once_naming_unknown_words():
    tokenizer = Tokenizer(["a", "red", "circle"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = tokenizer.encode(["a purple circle", "a red blob"])
    assert len(caught) == 1
    assert "purple" in str(caught[0].message) and "blob" in str(caught[0].message)
    assert ids[0, 2] == ids[1, 3] == tokenizer.unk_id


@pytest.mark.lesson08
def test_tokenizer_warns_and_truncates_long_captions():
    tokenizer = Tokenizer(["a", "red", "circle"], max_len=5)
    with pytest.warns(UserWarning, match="a red red red circle"):
        ids = tokenizer.encode(["a red red red circle"])
    assert ids.tolist() == [[1, 4, 5, 5, 2]]


@pytest.mark.lesson08
def test_tokenizer_refuses_empty_and_non_text_captions():
    tokenizer = Tokenizer(["a"])
    with pytest.raises(ValueError, match="caption 1 is empty"):
        tokenizer.encode(["a", "   "])
    with pytest.raises(TypeError, match="caption 2"):
        tokenizer.encode(["a", "a", 7])
    with pytest.raises(TypeError, match="single str"):
        tokenizer.encode("a")


@pytest.mark.lesson08
def test_tokenizer_from_captions_and_json_round_trip():
    tokenizer = Tokenizer.from_captions(["The cat sat", "a cat"])
    assert tokenizer.id_to_word[4:] == ["a", "cat", "sat", "the"]
    assert tokenizer.max_len == 5
    again = Tokenizer.from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    assert again == tokenizer
    assert again.decode(again.encode(["the cat sat"])) == ["the cat sat"]


# ---------------------------------------------------------------- batching


def test_batches_cover_every_index_exactly_once_and_keep_pairs_together():
    x = np.arange(103)
    names = [f"item {i}" for i in range(103)]
    seen = []
    for xb, nb in batches(x, names, batch_size=10, seed=1):
        assert isinstance(xb, np.ndarray) and isinstance(nb, list) and len(xb) <= 10
        assert nb == [f"item {i}" for i in xb]
        seen.extend(xb.tolist())
    assert sorted(seen) == list(range(103))
    assert seen != list(range(103))  # shuffled
    ordered = [xb for (xb,) in batches(x, batch_size=10, shuffle=False)]
    assert np.array_equal(np.concatenate(ordered), x)
    full = [len(xb) for (xb,) in batches(x, batch_size=10, drop_last=True)]
    assert full == [10] * 10


def test_batches_refuse_bad_input_at_once():
    with pytest.raises(ValueError, match="same length"):
        batches(np.zeros(3), np.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        batches(np.zeros(3), batch_size=0)


# ---------------------------------------------------------------- folder loader


def test_load_image_folder_skips_bad_files_with_one_warning(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "red.png")
    Image.new("L", (8, 8), 128).save(tmp_path / "grey.jpg")
    (tmp_path / "broken.png").write_bytes(b"this is not an image")
    (tmp_path / "captions.tsv").write_text(
        "# file\tcaption\n\nred.png\ta red picture\ngrey.jpg\ta grey picture\n"
        "broken.png\ta broken picture\nmissing.png\ta lost picture\n"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_image_folder(tmp_path, size=16)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "broken.png" in message and "missing.png" in message
    assert len(ds) == 2 and ds.captions == ["a red picture", "a grey picture"]
    assert ds.images.shape == (2, 3, 16, 16) and ds.images.dtype == np.float32
    assert np.allclose(ds.images[0], np.array([1, 0, 0])[:, None, None], atol=0.01)
    assert np.allclose(ds.images[1], 128 / 255, atol=0.02)  # grey became RGB
    assert ds.tokenizer.decode(ds.tokens) == ds.captions


def test_load_image_folder_fails_clearly_without_usable_data(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="captions.tsv"):
        load_image_folder(tmp_path)
    (tmp_path / "captions.tsv").write_text("missing.png\ta lost picture\nno tab here\n")
    with pytest.warns(UserWarning, match="no tab here"), pytest.raises(ValueError, match="no usable image"):
        load_image_folder(tmp_path)


# ---------------------------------------------------------------- architecture


def test_data_package_imports_nothing_else_from_tinymm():
    """tinymm.data sits below the engine: it may import numpy, PIL, and its own modules only."""
    package = pathlib.Path(__file__).resolve().parents[1] / "tinymm" / "data"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level > 0 else [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"tinymm"}, f"{source.name} imports {name}"
