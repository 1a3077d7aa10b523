import io

import numpy as np
import pytest
import torch
from PIL import Image

from corex_edu import widgets
from corex_edu.errors import ConfigurationError
from corex_edu.widgets import LatentTraversal

LATENT_SIZE = 6
SIDE = 5


def grey_decode(z):
    """Pixel (0, 0) = sigmoid(z_0), pixel (0, 1) = sigmoid(z_1), every other pixel = sigmoid(z_2): readable by hand."""
    pixels = torch.sigmoid(z[:, 2]).view(-1, 1, 1, 1).repeat(1, 1, SIDE, SIDE)
    pixels[:, 0, 0, 0] = torch.sigmoid(z[:, 0])
    pixels[:, 0, 0, 1] = torch.sigmoid(z[:, 1])
    return pixels


def rgb_decode(z):
    """Channel c of every pixel = sigmoid(z_c)."""
    return torch.sigmoid(z[:, :3]).view(-1, 3, 1, 1).repeat(1, 1, SIDE, SIDE)


def make_starts():
    return {"zeros": torch.zeros(LATENT_SIZE), "ones": torch.ones(LATENT_SIZE)}


def expected_byte(value):
    return round(1.0 / (1.0 + np.exp(-value)) * 255.0)


def test_latent_replaces_dims():
    traversal = LatentTraversal(grey_decode, make_starts(), dims=[4, 1])
    vector = traversal.latent("ones", [-0.5, 1.5])
    assert vector.shape == (LATENT_SIZE,)
    assert vector[4].item() == -0.5
    assert vector[1].item() == 1.5
    assert torch.equal(vector[[0, 2, 3, 5]], torch.ones(4))


def test_latent_leaves_start_unchanged():
    starts = make_starts()
    traversal = LatentTraversal(grey_decode, starts, dims=[0])
    traversal.latent("zeros", [1.0])
    assert torch.equal(traversal.starts["zeros"], torch.zeros(LATENT_SIZE))
    assert torch.equal(traversal.latent("zeros"), torch.zeros(LATENT_SIZE))


def test_render_grey_matches_sigmoid():
    traversal = LatentTraversal(grey_decode, make_starts(), dims=[0, 1], scale=3)
    image = traversal.render("zeros", [2.0, -1.0])
    assert image.dtype == np.uint8
    assert image.shape == (SIDE * 3, SIDE * 3)
    assert image[0, 0] == expected_byte(2.0)
    assert image[2, 5] == expected_byte(-1.0)  # scale 3: output column 5 shows input pixel (0, 1)
    assert image[10, 10] == expected_byte(0.0)


def test_render_rgb_shape_and_channels():
    traversal = LatentTraversal(rgb_decode, make_starts(), dims=[2], scale=2)
    image = traversal.render("zeros", [1.0])
    assert image.shape == (SIDE * 2, SIDE * 2, 3)
    assert list(image[3, 7]) == [expected_byte(0.0), expected_byte(0.0), expected_byte(1.0)]


def test_png_round_trip():
    traversal = LatentTraversal(rgb_decode, make_starts(), dims=[0])
    payload = traversal.png("ones", [-2.0])
    decoded = np.asarray(Image.open(io.BytesIO(payload)))
    assert payload.startswith(b"\x89PNG")
    assert np.array_equal(decoded, traversal.render("ones", [-2.0]))


def test_render_runs_without_grad():
    seen = []

    def decode(z):
        seen.append(torch.is_grad_enabled())
        return grey_decode(z)

    LatentTraversal(decode, make_starts(), dims=[0]).render("zeros")
    assert seen == [False]


def test_slider_move_updates_image():
    panel = LatentTraversal(grey_decode, make_starts(), dims=[0, 2]).widget()
    before = panel.image.value
    panel.sliders[1].value = 1.5
    assert panel.image.value != before
    assert panel.image.value == panel.traversal.png("zeros", [0.0, 1.5])


def test_dropdown_resets_sliders():
    panel = LatentTraversal(grey_decode, make_starts(), dims=[0, 2]).widget()
    panel.sliders[0].value = -1.0
    panel.dropdown.value = "ones"
    assert [slider.value for slider in panel.sliders] == [1.0, 1.0]
    assert panel.image.value == panel.traversal.png("ones", [1.0, 1.0])


def test_widget_layout_and_labels():
    traversal = LatentTraversal(grey_decode, make_starts(), dims=[3, 5], value_range=(-3.0, 3.0), step=0.1, dim_labels=["smile", "azimuth"])
    panel = traversal.widget()
    assert list(panel.children) == [panel.dropdown, *panel.sliders, panel.image, panel.message]
    assert panel.message.value == ""
    assert list(panel.dropdown.options) == ["zeros", "ones"]
    assert [slider.description for slider in panel.sliders] == ["smile", "azimuth"]
    assert (panel.sliders[0].min, panel.sliders[0].max, panel.sliders[0].step) == (-3.0, 3.0, 0.1)
    assert [slider.description for slider in LatentTraversal(grey_decode, make_starts(), dims=[3]).widget().sliders] == ["z[3]"]


def test_dim_labels_mapping():
    # The notebooks label sliders by latent index; an index without a label keeps the default.
    traversal = LatentTraversal(grey_decode, make_starts(), dims=[3, 5], dim_labels={5: "z[5] (1.20 nats)"})
    assert traversal.dim_labels == ("z[3]", "z[5] (1.20 nats)")
    assert [slider.description for slider in traversal.widget().sliders] == ["z[3]", "z[5] (1.20 nats)"]
    assert LatentTraversal(grey_decode, make_starts(), dims=[1], dim_labels={np.int64(1): "one"}).dim_labels == ("one",)


def test_redraw_error_shown_in_panel():
    calls = {"fail": False}

    def flaky_decode(z):
        if calls["fail"]:
            raise RuntimeError("decoder exploded")
        return grey_decode(z)

    panel = LatentTraversal(flaky_decode, make_starts(), dims=[0]).widget()
    before = panel.image.value
    calls["fail"] = True
    panel.sliders[0].value = 1.0
    assert panel.image.value == before
    assert "RuntimeError: decoder exploded" in panel.message.value
    calls["fail"] = False
    panel.sliders[0].value = 1.5
    assert panel.message.value == ""
    assert panel.image.value == panel.traversal.png("zeros", [1.5])


def test_redraw_error_message_escapes_html():
    def decode(z):
        if float(z[0, 0]) > 0.5:
            raise ValueError("<b>bad</b>")
        return grey_decode(z)

    panel = LatentTraversal(decode, make_starts(), dims=[0]).widget()
    panel.sliders[0].value = 1.0
    assert "&lt;b&gt;bad&lt;/b&gt;" in panel.message.value
    assert "<b>" not in panel.message.value


def test_slider_starts_clipped():
    starts = {"far": torch.tensor([5.0, -7.0, 0.3, 0.0, 0.0, 0.0])}
    panel = LatentTraversal(grey_decode, starts, dims=[0, 1, 2]).widget()
    assert [slider.value for slider in panel.sliders] == pytest.approx([2.0, -2.0, 0.3])


def test_panels_are_independent():
    traversal = LatentTraversal(grey_decode, make_starts(), dims=[0])
    first, second = traversal.widget(), traversal.widget()
    before = second.image.value
    first.sliders[0].value = 1.0
    assert second.image.value == before


def test_broken_callback_leaves_image(monkeypatch):
    # Shows that test_slider_move_updates_image depends on the observer: with a no-op it would fail.
    monkeypatch.setattr(widgets.TraversalPanel, "_on_change", lambda self, change: None)
    panel = LatentTraversal(grey_decode, make_starts(), dims=[0]).widget()
    before = panel.image.value
    panel.sliders[0].value = 1.5
    assert panel.image.value == before


def test_numpy_starts_accepted():
    starts = {"a": np.zeros(LATENT_SIZE), "b": [0, 0, 1, 0, 0, 0]}
    traversal = LatentTraversal(grey_decode, starts, dims=[2])
    assert traversal.latent("b").dtype == torch.float32
    assert traversal.render("b")[4, 4] == expected_byte(1.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"starts": {}}, "non-empty mapping"),
        ({"starts": {"a": torch.zeros(2, 3)}}, r"shape \(m,\), got \(2, 3\)"),
        ({"starts": {"a": torch.zeros(6), "b": torch.zeros(5)}}, "same shape"),
        ({"starts": {"a": torch.tensor([float("nan")] * 6)}}, "NaN"),
        ({"dims": [6]}, r"dims \[6\] are outside \[0, 6\)"),
        ({"dims": [-1]}, "outside"),
        ({"dims": []}, "at least one"),
        ({"dims": [1, 1]}, "repeat"),
        ({"value_range": (2.0, -2.0)}, "low < high"),
        ({"value_range": (0.0, float("inf"))}, "finite"),
        ({"step": 0.0}, "step must be in"),
        ({"step": 10.0}, "step must be in"),
        ({"dim_labels": ["only one"], "dims": [0, 1]}, "one label per dim"),
        ({"dim_labels": {4: "four"}, "dims": [0, 1]}, r"labels for \[4\], which are not in dims \[0, 1\]"),
        ({"dim_labels": {"x": "four"}, "dims": [0]}, "latent indices as keys"),
        ({"dim_labels": "ab", "dims": [0, 1]}, "got the string 'ab'"),
        ({"scale": 0}, "scale must be an integer"),
        ({"decode": "model"}, "callable"),
    ],
)
def test_invalid_arguments_rejected(arguments, message):
    keywords = {"decode": grey_decode, "starts": make_starts(), "dims": [0], **arguments}
    with pytest.raises(ConfigurationError, match=message):
        LatentTraversal(**keywords)


def test_unknown_start_rejected():
    traversal = LatentTraversal(grey_decode, make_starts(), dims=[0])
    with pytest.raises(ConfigurationError, match="unknown start 'twos'; available: 'zeros', 'ones'"):
        traversal.latent("twos")


def test_wrong_value_count_rejected():
    traversal = LatentTraversal(grey_decode, make_starts(), dims=[0, 1])
    with pytest.raises(ConfigurationError, match="expected 2 values"):
        traversal.latent("zeros", [1.0])


@pytest.mark.parametrize(
    ("decode", "message"),
    [
        (lambda z: torch.sigmoid(z).repeat(1, 131)[:, :784], r"shape \(1, 784\)"),
        (lambda z: torch.rand(1, 2, 4, 4), r"C = 1 or 3"),
        (lambda z: torch.rand(2, 1, 4, 4), r"shape \(2, 1, 4, 4\)"),
        (lambda z: torch.full((1, 1, 4, 4), 3.0), r"\[0, 1\], got values in \[3, 3\]"),
        (lambda z: torch.full((1, 1, 4, 4), float("nan")), "NaN"),
        (lambda z: np.zeros((1, 1, 4, 4)), "torch.Tensor"),
    ],
)
def test_bad_decode_output_rejected(decode, message):
    traversal = LatentTraversal(decode, make_starts(), dims=[0])
    with pytest.raises(ConfigurationError, match=message):
        traversal.render("zeros")


def test_rounding_overshoot_accepted():
    traversal = LatentTraversal(lambda z: torch.full((1, 1, 2, 2), 1.0 + 1e-6), make_starts(), dims=[0], scale=1)
    assert traversal.render("zeros").tolist() == [[255, 255], [255, 255]]


def test_image_shown_at_rendered_size():
    panel = LatentTraversal(grey_decode, make_starts(), dims=[0], scale=7).widget()
    assert panel.image.width == str(SIDE * 7)
    assert panel.image.height == str(SIDE * 7)


def test_integer_start_names():
    traversal = LatentTraversal(grey_decode, {3: torch.zeros(LATENT_SIZE), 7: torch.ones(LATENT_SIZE)}, dims=[0])
    assert list(traversal.widget().dropdown.options) == ["3", "7"]
    assert torch.equal(traversal.latent(7), torch.ones(LATENT_SIZE))
