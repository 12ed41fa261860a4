"""load_image(path, return_notes=True) says what was done to a user's file, in words.

The image is the same array with or without the notes; each note names one change: the crop and
resize (and whether the aspect ratio was kept), a dropped alpha channel (and how much of the
picture it had made transparent), grey, palette and 16-bit conversions, the EXIF orientation.
"""
import numpy as np
import pytest
from PIL import Image

from tinymm.data import load_image

pytestmark = pytest.mark.lesson13


def _save(array_or_image, path, **kwargs):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    image.save(path, **kwargs)
    return str(path)


def _loaded(path, size=32):
    image, notes = load_image(path, size=size, return_notes=True)
    np.testing.assert_array_equal(image, load_image(path, size=size))  # the notes change nothing
    return image, notes


def _pixels(height, width, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def test_a_32x32_rgb_file_is_used_as_it_is(tmp_path):
    image, notes = _loaded(_save(_pixels(32, 32), tmp_path / "exact.png"))
    assert image.shape == (3, 32, 32) and image.dtype == np.float32
    assert notes == []


def test_a_landscape_photo_is_cut_to_its_centre_square_then_resized(tmp_path):
    pixels = np.zeros((480, 640, 3), np.uint8)
    pixels[:, :80] = 255                     # white bands in the 80 columns cut off at each side
    pixels[:, -80:] = 255
    image, notes = _loaded(_save(pixels, tmp_path / "photo.jpg"))
    assert notes == ["resized from 640x480 to 32x32 (its centre 480x480 square, so the aspect ratio "
                     "is kept: 160 columns cut off at the sides)"]
    assert image.max() < 0.05                # the white bands were really cut off


def test_portrait_small_and_nearly_square_pictures(tmp_path):
    assert _loaded(_save(_pixels(640, 480), tmp_path / "tall.png"))[1] == [
        "resized from 480x640 to 32x32 (its centre 480x480 square, so the aspect ratio is kept: "
        "160 rows cut off at the top and bottom)"]
    assert _loaded(_save(_pixels(16, 16), tmp_path / "small.png"))[1] == [
        "resized from 16x16 to 32x32 (enlarged: expect a blurred picture)"]
    assert _loaded(_save(_pixels(32, 40), tmp_path / "wide.png"))[1] == [
        "cut from 40x32 to its centre 32x32 square, so the aspect ratio is kept: 8 columns cut off at the sides"]
    assert _loaded(_save(_pixels(64, 64), tmp_path / "big.png"), size=8)[1] == ["resized from 64x64 to 8x8"]


def test_alpha_is_dropped_and_the_note_says_how_much_was_transparent(tmp_path):
    rgba = _pixels(64, 64, channels=4)
    rgba[..., 3] = 255
    rgba[:16, :, 3] = 0                      # the top quarter fully transparent
    image, notes = _loaded(_save(rgba, tmp_path / "rgba.png"))
    assert notes == ["alpha dropped: 25% of the pixels were (partly) transparent and are laid on black",
                     "resized from 64x64 to 32x32"]
    np.testing.assert_allclose(image[:, :7], 0.0, atol=1e-6)   # laid on black
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 128                      # a single half-transparent pixel: counted, not rounded to 0%
    assert _loaded(_save(rgba, tmp_path / "one.png"))[1][0] == \
        "alpha dropped: 1 of 4096 of the pixels were (partly) transparent and are laid on black"
    rgba[0, 0, 3] = 255
    assert _loaded(_save(rgba, tmp_path / "opaque.png"))[1][0] == "alpha dropped (every pixel was opaque)"


def test_grey_palette_and_sixteen_bit_conversions_are_named(tmp_path):
    assert _loaded(_save(_pixels(32, 32, 1)[..., 0], tmp_path / "grey.png"))[1] == ["grey copied to R, G and B"]
    palette = Image.fromarray(_pixels(32, 32)).convert("P")
    assert _loaded(_save(palette, tmp_path / "palette.png"))[1] == ["palette colours converted to RGB"]
    see_through = _loaded(_save(palette, tmp_path / "palette.gif", transparency=int(palette.getpixel((0, 0)))))[1]
    assert see_through[0] == "palette colours converted to RGB"
    assert see_through[1].startswith("alpha dropped: ") and see_through[1].endswith("laid on black")
    deep, notes = _loaded(_save(np.full((32, 32), 13107, np.uint16), tmp_path / "deep.png"))
    assert notes == ["16-bit grey scaled to [0, 1] (divided by 65535) and copied to R, G and B"]
    np.testing.assert_allclose(deep, 0.2, atol=1e-4)


def test_float_values_outside_zero_one_are_clipped_and_counted(tmp_path):
    values = np.full((32, 32), 0.5, np.float32)
    values[:2] = 1.5                         # two rows too bright: 2 x 32 pixels x 3 channels
    image, notes = _loaded(_save(Image.fromarray(values, mode="F"), tmp_path / "float.tiff"))
    assert notes == ["32-bit float grey taken as values in [0, 1] and copied to R, G and B",
                     "192 of its 3072 values fell outside [0, 1] and were clipped"]
    assert image.max() == 1.0


def test_a_sideways_phone_photo_is_turned_upright(tmp_path):
    stored = np.zeros((40, 60, 3), np.uint8)  # stored 60 wide, 40 tall; the tag says: turn it
    stored[:10] = [255, 0, 0]                 # red along the stored top edge
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6                          # "turn 90 degrees clockwise to view"
    loaded, notes = _loaded(_save(image, tmp_path / "phone.jpg", exif=exif))
    assert notes == ["turned 90 degrees clockwise, as its EXIF orientation tag (6) asks",
                     "resized from 40x60 to 32x32 (its centre 40x40 square, so the aspect ratio is kept: "
                     "20 rows cut off at the top and bottom)"]
    # turned clockwise, the stored top edge is the right edge: red there, dark on the left
    # (not turned, red would lie along the top)
    assert loaded[0, :, -4:].mean() > 0.8 and loaded[0, :, :4].mean() < 0.1


def test_only_the_first_frame_of_an_animation_is_used(tmp_path):
    frames = [Image.fromarray(_pixels(32, 32, seed=s)) for s in range(3)]
    path = tmp_path / "moving.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert _loaded(str(path))[1] == ["first of its 3 frames used", "palette colours converted to RGB"]
