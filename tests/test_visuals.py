"""Decoding images in the inference actor: good files, and every way a file can be bad."""

import random
import struct

import av
import numpy
import pytest
from PIL import Image

from pipeline import visuals
from pipeline.api import Sample
from pipeline.synth import write_video
from pipeline.visuals import VisualError, load_visual


def image_sample(path) -> Sample:
    return Sample(sample_id="s", benchmark="chair", prompt="p", image_path=str(path))


def test_image_is_decoded_as_rgb(tmp_path):
    Image.new("L", (20, 10), 128).save(tmp_path / "grey.png")
    visual = load_visual(image_sample(tmp_path / "grey.png"), num_frames=8)
    assert visual.modality == "image" and len(visual.images) == 1
    assert visual.images[0].mode == "RGB" and visual.images[0].size == (20, 10)


def test_missing_truncated_and_non_image_files(tmp_path):
    Image.new("RGB", (64, 64), (10, 200, 30)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.jpg").write_text("not an image")
    cases = {
        "nowhere.jpg": "does not exist",
        "cut.jpg": "could not be decoded: truncated",
        "notes.jpg": "could not be decoded: cannot identify image file",
    }
    for name, reason in cases.items():
        with pytest.raises(VisualError) as error:
            load_visual(image_sample(tmp_path / name), num_frames=1)
        message = str(error.value)
        assert str(tmp_path / name) in message and reason in message.lower() and "\n" not in message


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(visuals, "MAX_IMAGE_PIXELS", 9_999)
    with pytest.raises(VisualError, match=r"big.png is 100x100 pixels, over the 9,999-pixel limit"):
        load_visual(image_sample(tmp_path / "big.png"), num_frames=1)


def test_sample_without_a_path():
    with pytest.raises(VisualError, match="sample s has neither"):
        load_visual(Sample(sample_id="s", benchmark="x", prompt="p"), num_frames=1)


def test_frame_indices_are_uniform_and_cover_the_ends():
    assert visuals.frame_indices(100, 5) == [0, 24, 49, 74, 99]
    assert visuals.frame_indices(3, 5) == [0, 0, 1, 1, 2]


def video_sample(path) -> Sample:
    return Sample(sample_id="v", benchmark="msvd_qa", prompt="p", video_path=str(path))


def test_video_frames_are_sampled_uniformly(tmp_path):
    write_video(tmp_path / "clip.mp4", random.Random(0), n_frames=10)
    visual = load_visual(video_sample(tmp_path / "clip.mp4"), num_frames=4)
    assert visual.modality == "video" and len(visual.images) == 4
    assert all(image.mode == "RGB" and image.size == (64, 48) for image in visual.images)
    # The shape moves left to right, so the sampled frames differ and are in time order.
    centres = [numpy.asarray(image).min(axis=2).argmin(axis=1).mean() for image in visual.images]
    assert centres == sorted(centres) and len(set(centres)) == 4


def test_zero_frame_corrupt_and_missing_videos(tmp_path):
    # An AVI keeps its video stream with zero frames (an empty MP4 loses the stream).
    with av.open(str(tmp_path / "empty.avi"), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    write_video(tmp_path / "full.mp4", random.Random(0))
    data = (tmp_path / "full.mp4").read_bytes()  # an MP4 cut short loses its index (moov)
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.mp4").write_text("not a video")
    cases = {"empty.avi": "has no frames", "text.mp4": "could not be decoded",
             "nowhere.mp4": "does not exist", "cut.mp4": "has no video stream"}  # fmt: skip
    for name, reason in cases.items():
        with pytest.raises(VisualError) as error:
            load_visual(video_sample(tmp_path / name), num_frames=4)
        message = str(error.value)
        assert str(tmp_path / name) in message and reason in message and "\n" not in message


def hostile_jpeg2000(path) -> None:
    """255 bytes: a JPEG 2000 signature, then a box whose 64-bit length claims 2**62 bytes."""
    signature = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
    file_type = struct.pack(">I", 20) + b"ftyp" + b"jp2 " + b"\x00" * 4 + b"jp2 "
    header = struct.pack(">I", 1) + b"jp2h" + struct.pack(">Q", 2**62)
    data = signature + file_type + header
    path.write_bytes(data + b"\x00" * (255 - len(data)))


def unsupported_dds(path) -> None:
    """A DDS header with a four-character pixel format PIL does not implement."""
    header = struct.pack("<7I", 124, 0x1007, 4, 4, 0, 0, 0) + b"\x00" * 44
    pixel_format = struct.pack("<2I", 32, 0x4) + b"ZZZZ" + b"\x00" * 20
    path.write_bytes(b"DDS " + header + pixel_format + struct.pack("<5I", 0x1000, 0, 0, 0, 0) + b"\x00" * 64)


@pytest.mark.parametrize(("write", "reason"), [
    (hostile_jpeg2000, "could not be decoded: memoryerror"),
    (unsupported_dds, "could not be decoded: unimplemented pixel format"),
])
def test_any_decoder_failure_is_a_visual_error(tmp_path, write, reason):
    path = tmp_path / "hostile.jpg"
    write(path)
    with pytest.raises(VisualError) as error:
        load_visual(image_sample(path), num_frames=1)
    assert str(path) in str(error.value) and reason in str(error.value).lower()


def test_a_format_outside_the_list_is_not_tried(tmp_path):
    # An EPS file named .jpg: PIL would hand it to Ghostscript if it tried every plug-in.
    (tmp_path / "page.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(VisualError, match="cannot identify image file"):
        load_visual(image_sample(tmp_path / "page.jpg"), num_frames=1)


def test_16_bit_greyscale_keeps_its_levels_scaled_to_8_bits(tmp_path):
    ramp = (numpy.arange(256, dtype=numpy.uint16) * 257).reshape(16, 16)  # 0 .. 65535
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as raw:
        assert raw.mode.startswith("I")  # PIL keeps it 16-bit
    rgb = numpy.asarray(load_visual(image_sample(tmp_path / "deep.png"), num_frames=1).images[0])
    assert rgb.shape == (16, 16, 3)
    assert numpy.array_equal(rgb[..., 0].ravel(), numpy.arange(256))  # v * 257 >> 8 == v
    assert len(numpy.unique(numpy.asarray(Image.open(tmp_path / "deep.png").convert("RGB")))) <= 2  # PIL's own
