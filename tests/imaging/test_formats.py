"""Format names and extensions: one module decides them for the writer, the pipeline and the CLI."""

from __future__ import annotations

import pytest

from derain_cli import imaging
from derain_cli.errors import UsageError


def test_format_names():
    assert imaging.resolve_format("jpg") == imaging.resolve_format("JPEG") == "JPEG"
    assert imaging.resolve_format(None, "x/photo.TIFF") == "TIFF"
    assert imaging.resolve_format("same", "x/photo.jpeg") == "JPEG"
    assert imaging.extension_for("tiff") == ".tif" and imaging.extension_for("WEBP") == ".webp"
    with pytest.raises(UsageError, match="unknown image format 'gif'"):
        imaging.resolve_format("gif")
    with pytest.raises(UsageError, match=r"photo\.xyz: cannot tell the output format"):
        imaging.resolve_format("same", "photo.xyz")
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"} <= imaging.SUPPORTED_EXTENSIONS


@pytest.mark.parametrize(
    ("src", "fmt", "extension"),
    [
        ("rain.JPG", None, ".jpg"),  # the input's own extension, lower-cased
        ("rain.jpeg", "same", ".jpeg"),
        ("rain.png", "jpg", ".jpg"),
        ("rain.jpg", "TIFF", ".tif"),
        ("rain.webp", "tif", ".tif"),
        ("phone.HEIC", "same", ".jpg"),  # HEIC is written as JPEG, which every viewer opens
        ("phone.heif", None, ".jpg"),
    ],
)
def test_output_extension(src, fmt, extension):
    assert imaging.output_extension(src, fmt) == extension


def test_every_command_line_format_choice_is_a_format():
    for choice in imaging.FORMAT_CHOICES:
        if choice != "same":
            assert imaging.extension_for(choice) in imaging.SUPPORTED_EXTENSIONS
    with pytest.raises(UsageError, match="unknown image format 'gif'"):
        imaging.output_extension("rain.png", "gif")
