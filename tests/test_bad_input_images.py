"""Image files and captions.tsv are checked at the door.

Before these checks a 16-bit PNG loaded as 99% white, transparent pixels kept whatever colour
hid under them, a 20000 x 20000 PNG aborted a whole folder load with a traceback, a latin-1
captions.tsv gave a UnicodeDecodeError without a line, a UTF-8 byte-order mark dropped the
first row, extra columns became part of the caption, and paths in captions.tsv could read
files outside the folder.
"""
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from tinymm.data import load_image, load_image_folder
from tinymm.errors import UserError


def _save(array_or_image, path, **options):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    image.save(path, **options)
    return path


def _bomb_png(path, side):
    """A real PNG of side x side black pixels (1 bit each): a small file that unpacks to side² pixels."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    row = b"\x00" + bytes((side + 7) // 8)  # filter byte, then the packed pixels of one row
    packer = zlib.compressobj(1)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grey, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


# -- pixel formats ---------------------------------------------------------------------------


def test_sixteen_bit_grey_png_is_scaled_not_clipped_to_white(tmp_path):
    path = _save(np.full((8, 8), 13107, dtype=np.uint16), tmp_path / "deep.png")  # 13107 / 65535 = 0.2
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # Pillow really reads it as 16-bit
    np.testing.assert_allclose(load_image(path, size=8), 0.2, atol=1e-4)


def test_eight_bit_rgb_and_grey_keep_their_values(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8) + np.array([51, 102, 204], np.uint8)
    loaded = load_image(_save(rgb, tmp_path / "rgb.png"), size=8)
    np.testing.assert_allclose(loaded[:, 0, 0], [0.2, 0.4, 0.8], atol=1e-6)
    grey = load_image(_save(np.full((8, 8), 153, np.uint8), tmp_path / "grey.png"), size=8)
    np.testing.assert_allclose(grey, 0.6, atol=1e-6)


def test_transparent_pixels_are_laid_on_black(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[...] = [255, 255, 255, 0]          # left half: white, but fully transparent
    rgba[:, 4:] = [255, 0, 0, 255]          # right half: opaque red
    loaded = load_image(_save(rgba, tmp_path / "rgba.png"), size=8)
    np.testing.assert_allclose(loaded[:, :, :4], 0.0, atol=1e-6)
    np.testing.assert_allclose(loaded[:, 3, 6], [1.0, 0.0, 0.0], atol=1e-6)
    half = np.zeros((8, 8, 2), np.uint8) + np.array([200, 51], np.uint8)  # grey 200 at 20% opacity
    grey_alpha = load_image(_save(Image.fromarray(half, mode="LA"), tmp_path / "la.png"), size=8)
    np.testing.assert_allclose(grey_alpha, 200 / 255 * 51 / 255, atol=1e-5)


def test_palette_image_with_a_transparent_colour(tmp_path):
    indices = np.zeros((8, 8), np.uint8)
    indices[:, 4:] = 1
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 255, 255, 0, 255, 0] + [0, 0, 0] * 254)  # 0: white, 1: green
    path = _save(image, tmp_path / "palette.png", transparency=0)     # ... and white is transparent
    loaded = load_image(path, size=8)
    np.testing.assert_allclose(loaded[:, :, :4], 0.0, atol=1e-6)
    np.testing.assert_allclose(loaded[:, 2, 5], [0.0, 1.0, 0.0], atol=1e-6)


# -- decompression bombs -----------------------------------------------------------------------


def test_a_20000_pixel_wide_png_is_one_line_naming_the_file(tmp_path):
    path = _bomb_png(tmp_path / "bomb.png", 20000)
    assert path.stat().st_size < 500_000  # 400 million pixels in a few hundred kB
    with pytest.raises(UserError, match=r"^load_image: cannot read .*bomb\.png as an image") as info:
        load_image(path)
    assert "\n" not in str(info.value)


def test_tinymm_own_pixel_limit_is_checked_before_decoding(tmp_path):
    path = _bomb_png(tmp_path / "big.png", 9000)  # under Pillow's own limit, over tinymm's
    with pytest.raises(UserError, match=r"big\.png is 9000 x 9000 pixels, more than .*MAX_PIXELS = 64000000"):
        load_image(path)


def test_one_bomb_in_a_folder_is_skipped_by_name_and_the_rest_loads(tmp_path):
    _save(np.full((8, 8, 3), 255, np.uint8), tmp_path / "white.png")
    _bomb_png(tmp_path / "bomb.png", 20000)
    _bomb_png(tmp_path / "big.png", 9000)
    (tmp_path / "captions.tsv").write_text("white.png\ta white square\nbomb.png\ta bomb\nbig.png\ta big one\n")
    with pytest.warns(UserWarning, match=r"skipped 2 unusable line\(s\).*bomb\.png.*big\.png"):
        ds = load_image_folder(tmp_path, size=8)
    assert ds.file_names == ["white.png"] and ds.captions == ["a white square"]
    np.testing.assert_allclose(ds.images, 1.0)


# -- captions.tsv ---------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path):
    for name, value in [("a.png", 51), ("b.png", 204)]:
        _save(np.full((8, 8, 3), value, np.uint8), tmp_path / name)
    return tmp_path


def _write_tsv(folder_path, data):
    (folder_path / "captions.tsv").write_bytes(data)


def test_latin1_captions_are_one_line_naming_file_and_line(photos):
    _write_tsv(photos, "# my photos\na.png\tun caf\u00e9 noir\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"captions\.tsv line 2 is not UTF-8 text .*save the file as UTF-8"):
        load_image_folder(photos, size=8)


def test_utf8_with_accents_and_a_byte_order_mark_keeps_the_first_row(photos):
    _write_tsv(photos, "\ufeffa.png\tun caf\u00e9 noir\r\nb.png\ta bright one\r\n".encode("utf-8"))
    ds = load_image_folder(photos, size=8)
    assert ds.file_names == ["a.png", "b.png"]
    assert ds.captions == ["un caf\u00e9 noir", "a bright one"]
    np.testing.assert_allclose(ds.images[0], 0.2, atol=1e-6)


def test_extra_columns_are_an_error_naming_the_line(photos):
    _write_tsv(photos, b"a.png\ta dark one\nb.png\ta bright one\tsource: camera\n")
    with pytest.raises(UserError, match=r"captions\.tsv line 2 has more than two tab-separated columns"):
        load_image_folder(photos, size=8)


@pytest.mark.parametrize("make_name", [
    lambda outside: os.path.join("..", outside.name, "secret.png"),
    lambda outside: str(outside / "secret.png"),
    lambda outside: "link.png",
    lambda outside: "linked_dir/secret.png",
])
def test_paths_leading_outside_the_folder_are_refused_with_the_line(tmp_path, make_name):
    inside, outside = tmp_path / "data", tmp_path / "private"
    inside.mkdir()
    outside.mkdir()
    _save(np.zeros((8, 8, 3), np.uint8), outside / "secret.png")
    _save(np.zeros((8, 8, 3), np.uint8), inside / "a.png")
    os.symlink(outside / "secret.png", inside / "link.png")
    os.symlink(outside, inside / "linked_dir")
    (inside / "captions.tsv").write_text(f"a.png\tfine\n{make_name(outside)}\ta secret\n")
    with pytest.raises(UserError, match=r"captions\.tsv line 2: .* leads outside the folder"):
        load_image_folder(inside, size=8)


def test_links_and_subfolders_inside_the_folder_are_fine(photos):
    (photos / "sub").mkdir()
    _save(np.full((8, 8, 3), 102, np.uint8), photos / "sub" / "c.png")
    os.symlink(photos / "a.png", photos / "alias.png")
    _write_tsv(photos, b"sub/c.png\tin a subfolder\nalias.png\tthrough a link\nsub/../b.png\tup and back\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_image_folder(photos, size=8)
    np.testing.assert_allclose(ds.images[:, 0, 0, 0], [0.4, 0.2, 0.8], atol=1e-6)
