"""Bad and odd files: each gives a clear reason or is handled correctly."""

import io
import subprocess
import sys

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
    assert full.size == (3000, 2000)  # reduced by an integer factor to the 4096 px long-side cap
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


def test_decoded_size_over_the_memory_budget_is_refused_with_a_reason():
    buf = io.BytesIO()
    Image.new("RGB", (1200, 1000)).save(buf, format="PNG")  # 1.2 MP: ~4.8 MB decoded
    with pytest.raises(ImageError, match="too large to decode"):
        open_image(buf.getvalue(), ImageLimits(max_decode_bytes=2_000_000))
    assert open_image(buf.getvalue()).size == (1200, 1000)


def test_16bit_grey_keeps_its_high_byte():
    a = np.full((64, 64), 40000, np.uint16)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    assert np.asarray(open_image(buf.getvalue()))[0, 0].tolist() == [156, 156, 156]  # 40000 >> 8


_BOMBS = """
import io, resource, sys, threading
from pathlib import Path
from embedder.images import DecoderBusy, open_image
files = [Path(p).read_bytes() for p in sys.argv[1:]]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
done, busy = [], []
def one(data):
    try:
        done.append(open_image(data).size)
    except DecoderBusy:
        busy.append(1)
threads = [threading.Thread(target=one, args=(d,)) for d in files]
[t.start() for t in threads]; [t.join() for t in threads]
print(len(done), len(busy), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def test_four_concurrent_49_megapixel_pngs_stay_within_600_mb(tmp_path):
    """Small files that decode huge (16-bit grey, RGBA at 7000x7000, under the 50 MP limit): four at
    once must not cost four times their decoded size (measured in a fresh process)."""
    paths = []
    grey = np.zeros((7000, 7000), np.uint16)
    grey[::7] = 40000
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    del grey
    Image.new("RGBA", (7000, 7000), (10, 20, 30, 40)).save(tmp_path / "rgba.png")
    for name in ("grey16.png", "rgba.png"):
        assert (tmp_path / name).stat().st_size < 300_000
        paths += [str(tmp_path / name)] * 2
    out = subprocess.run([sys.executable, "-c", _BOMBS, *paths], capture_output=True, text=True, check=True)
    decoded, busy, growth_mb = out.stdout.split()
    assert int(decoded) >= 2 and int(decoded) + int(busy) == 4
    assert float(growth_mb) <= 600, f"peak memory grew by {growth_mb} MB"
