"""Decodes a sample's image or video into PIL images, inside the inference actor.

Readers yield paths only, so a dataset streams; pixels are decoded here, one batch at a time.
Every failure raises `VisualError` with a one-line message naming the file, which the inference
stage turns into a row with `error` set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.api import Sample, Visual

# PIL's own decompression-bomb threshold (~89.5 megapixels, a 1 GB RGB buffer). Checked before
# decoding, from the header, so a hostile file costs nothing; PIL's own check uses it too.
MAX_IMAGE_PIXELS = 89_478_485
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# The formats an evaluation image comes in. PIL would otherwise also try every other plug-in on
# a file of unknown content (EPS, for one, runs Ghostscript), whatever its name says.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "JPEG2000", "PPM", "DDS", "ICO", "AVIF")
# 16-bit (and 32-bit integer) greyscale: PIL's convert("RGB") clips each value at 255, which
# crushes a 16-bit image to almost black and white; shift the high byte down instead.
_WIDE_GREY_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class VisualError(ValueError):
    """An image or video that cannot be decoded; the message names the file."""


def load_visual(sample: Sample, num_frames: int) -> Visual:
    """Decodes the sample's image (RGB) or `num_frames` uniformly sampled video frames.

    Args:
        sample: a reader's sample; its `video_path` wins if both paths are set.
        num_frames: frames to sample from a video (ignored for images).

    Raises:
        VisualError: no path, a missing file, or a file that does not decode.
    """
    if sample.video_path:
        return Visual(
            images=load_video_frames(Path(sample.video_path), num_frames), modality="video"
        )
    if sample.image_path:
        return Visual(images=[load_image(Path(sample.image_path))], modality="image")
    raise VisualError(f"sample {sample.sample_id} has neither an image_path nor a video_path")


def load_image(path: Path) -> Image.Image:
    """Opens and fully decodes an image as RGB."""
    if not path.is_file():
        raise VisualError(f"image {path} does not exist")
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise VisualError(
                    f"image {path} is {width}x{height} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel "
                    "limit (decompression-bomb guard); downscale it before evaluating"
                )
            return to_rgb(image)  # converting loads, so truncation surfaces here
    except VisualError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever a decoder raises is this sample's error
        # PIL reports unknown formats as UnidentifiedImageError (an OSError), truncated data as
        # OSError, malformed headers as SyntaxError or ValueError, a hostile length field as
        # MemoryError and an unsupported pixel format as NotImplementedError.
        raise VisualError(f"image {path} could not be decoded: {_one_line(error)}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of a decoded image; 16- and 32-bit greyscale keep their full range, scaled."""
    if image.mode in _WIDE_GREY_MODES:
        values = np.clip(np.asarray(image).astype(np.int64), 0, None)
        # "I" is 32-bit, but PIL also decodes some 16-bit greyscale (older PNG, TIFF) into it:
        # values that fit in 16 bits are taken as 16-bit.
        bits = 16 if image.mode != "I" or values.max(initial=0) < 1 << 16 else 32
        grey = (values >> (bits - 8)).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0  # floats in [0, 1] or already 0-255
        return Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    return image.convert("RGB")


def frame_indices(total: int, num_frames: int) -> list[int]:
    """`num_frames` indices spread uniformly over `total` frames, first and last included.

    Same rule as Video-LLaVA and LLaVA-NeXT-Video (`np.linspace(0, total - 1, n).astype(int)`);
    a video shorter than `num_frames` repeats frames so the model always sees `num_frames`.
    """
    return np.linspace(0, total - 1, num_frames).astype(int).tolist()


def load_video_frames(path: Path, num_frames: int) -> list[Image.Image]:
    """Decodes `num_frames` uniformly sampled frames of a video's first video stream, as RGB."""
    import av  # imported here: only video runs pay for it

    if not path.is_file():
        raise VisualError(f"video {path} does not exist")
    try:
        # Counting packets demuxes without decoding, so it is cheap and, unlike the container's
        # frame count, always available.
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VisualError(f"video {path} has no video stream")
            total = sum(1 for packet in container.demux(video=0) if packet.size > 0)
        if total == 0:
            raise VisualError(f"video {path} has no frames")
        wanted = frame_indices(total, num_frames)
        wanted_set = set(wanted)
        picked: dict[int, Image.Image] = {}
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted_set:
                    picked[index] = frame.to_image().convert("RGB")
                if index >= wanted[-1]:
                    break
    except VisualError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VisualError(f"video {path} could not be decoded: {_one_line(error)}") from None
    if not picked:
        raise VisualError(f"video {path} has no decodable frames")
    # A frame that failed to decode (damaged packet) is replaced by the nearest earlier one.
    frames, last = [], None
    for index in wanted:
        last = picked.get(index, last) or next(iter(picked.values()))
        frames.append(last)
    return frames


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or error.__class__.__name__
