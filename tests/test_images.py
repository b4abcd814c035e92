"""Bad and odd files: each gives a clear reason or is handled correctly."""

import io

import numpy as np
import pytest
from PIL import Image

from embedder.images import ImageError, ImageLimits, open_image
from tests.conftest import DATASETS, need_datasets

BAD = DATASETS / "badfiles"


@pytest.fixture(autouse=True)
def _data():
    need_datasets()


@pytest.mark.parametrize(
    "name, reason",
    [
        ("african_elephants_truncated_file.jpg", "truncated"),
        ("made_empty_0bytes.jpg", "empty file"),
        ("made_text_not_an_image.jpg", "not an image"),
        ("made_tiny_1x1.jpg", "too small"),
    ],
)
def test_broken_files_give_a_reason(name, reason):
    with pytest.raises(ImageError, match=reason):
        open_image(BAD / name)


def test_cmyk_becomes_rgb_with_same_content_as_rgb_version():
    cmyk = np.asarray(open_image(BAD / "african_elephants_cmyk.jpg"), dtype=np.float32)
    bw = np.asarray(open_image(BAD / "african_elephants_bw.jpg"), dtype=np.float32)
    assert cmyk.shape == bw.shape == (1536, 2048, 3)
    # Same photo: luminance of the CMYK decode tracks the greyscale version closely.
    assert np.corrcoef(cmyk.mean(2).ravel(), bw[..., 0].ravel())[0, 1] > 0.9


def test_exif_rotation_is_applied():
    raw = Image.open(BAD / "african_elephants_with_exif_orientation.jpg")
    assert raw.size == (1536, 2048)
    assert open_image(BAD / "african_elephants_with_exif_orientation.jpg").size == (2048, 1536)


def test_16bit_is_scaled_not_clipped():
    img = np.asarray(open_image(BAD / "made_gray16_16bit_256x256.png"))
    assert img.dtype == np.uint8 and img.shape == (256, 256, 3)
    # Clipping at 255 would turn almost everything white; scaling keeps a spread of values.
    assert (img == 255).mean() < 0.5 and img.std() > 20


def test_alpha_composites_on_grey_not_black():
    img = np.asarray(open_image(BAD / "made_rgba_alpha_256x256.png"))
    assert tuple(img[0, 0]) == (128, 128, 128)  # fully transparent corner
    assert img[128, 128, 0] > 200  # the orange disc is kept


def test_huge_image_decodes_and_jpeg_draft_shrinks_it():
    full = open_image(BAD / "made_huge_6000x4000_blocknoise.jpg")
    assert full.size == (6000, 4000)
    small = open_image(BAD / "made_huge_6000x4000_blocknoise.jpg", draft_size=256)
    assert 256 <= min(small.size) < 1000


def test_decompression_bomb_is_refused_before_decoding():
    buf = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buf, format="PNG")  # 400 MP of zeros, a few hundred KB
    assert len(buf.getvalue()) < 2_000_000
    with pytest.raises(ImageError, match="decompression bomb"):
        open_image(buf.getvalue())


def test_limits_are_configurable():
    with pytest.raises(ImageError, match="too large"):
        open_image(BAD / "african_elephants_bw.jpg", ImageLimits(max_pixels=1_000_000))
    with pytest.raises(ImageError, match="file too large"):
        open_image(BAD / "made_huge_6000x4000_blocknoise.jpg", ImageLimits(max_bytes=100_000))


def test_bytes_and_pil_inputs():
    data = (BAD / "african_elephants_bw.jpg").read_bytes()
    assert open_image(data).mode == "RGB"
    assert open_image(Image.new("P", (64, 64))).mode == "RGB"
