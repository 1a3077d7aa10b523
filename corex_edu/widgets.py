"""Latent traversal widget: move chosen latent dimensions with sliders and watch the decoded image.

The notebooks use it in two ways. For the stacked CorEx model on MNIST each start is a class's
mean latent code and the sliders move the dimensions with the highest I(x:z_i). For the CelebA
AnchorVAE each start is the encoder mean of a seed image and there is one slider per anchored
latent.

:class:`LatentTraversal` does the work without any widget (``latent``, ``render``, ``png``), so
it can be tested and used for static figures. :meth:`LatentTraversal.widget` wraps it in an
ipywidgets panel (ipywidgets 8): a dropdown of starts, one slider per dimension, the image and a
message line. If decoding fails after a slider move, the panel keeps the last good image and
shows the error in its message line, so the error appears under the cell instead of only in
JupyterLab's log console.

The ``decode`` callable belongs to the caller. :meth:`LatentTraversal.render` calls it inside
``torch.no_grad()``, but putting the model in eval mode (dropout, batch-norm statistics) and
moving the latent batch to the model's device are the caller's job, for example::

    model.eval()
    traversal = LatentTraversal(lambda z: model.decode(z.to(device)).view(-1, 1, 28, 28), starts, dims=[3, 17])
    traversal.widget()
"""

from __future__ import annotations

import html
import io
import logging
import math
from typing import Any, Callable, Mapping, Sequence

import ipywidgets
import numpy as np
import torch
from PIL import Image as PILImage  # pillow is a dependency of matplotlib, so it is always installed

from corex_edu.errors import ConfigurationError

# Pixel values may leave [0, 1] by this much through float rounding before render() rejects them.
RANGE_TOLERANCE = 1e-4

logger = logging.getLogger(__name__)


class LatentTraversal:
    """Decode a start latent vector with some of its dimensions replaced by slider values.

    Args:
        decode: maps a latent batch of shape (B, m) to images of shape (B, C, H, W) with values
            in [0, 1] and C = 1 (grey) or 3 (RGB).
        starts: display name -> latent vector of shape (m,); every vector has the same m.
        dims: the latent indices that get a slider, each in [0, m) and none repeated.
        value_range: (low, high) bounds of every slider, in latent units.
        step: slider step, in latent units.
        dim_labels: slider labels. Either a sequence with one label per entry of ``dims``, or a
            mapping from latent index to label. Without labels, or for a dim missing from the
            mapping, the label is ``"z[i]"``.
        scale: each latent pixel is shown as a ``scale`` x ``scale`` block (nearest neighbour).

    Raises:
        ConfigurationError: any argument is invalid; the message names the value and the fix.
    """

    def __init__(
        self,
        decode: Callable[[torch.Tensor], torch.Tensor],
        starts: Mapping[str, Any],
        dims: Sequence[int],
        value_range: tuple[float, float] = (-2.0, 2.0),
        step: float = 0.05,
        dim_labels: Sequence[str] | Mapping[int, str] | None = None,
        scale: int = 4,
    ) -> None:
        if not callable(decode):
            raise ConfigurationError(f"decode must be a callable that maps a (B, m) latent batch to (B, C, H, W) images, got {type(decode).__name__}")
        self.decode = decode
        self.starts = _validate_starts(starts)
        self.latent_size = next(iter(self.starts.values())).shape[0]
        self.dims = _validate_dims(dims, self.latent_size)
        self.value_range = _validate_range(value_range)
        self.step = _validate_step(step, self.value_range)
        self.dim_labels = _validate_labels(dim_labels, self.dims)
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ConfigurationError(f"scale must be an integer >= 1 (pixels per latent-image pixel), got {scale!r}")
        self.scale = scale

    def start_values(self, start_name: str) -> list[float]:
        """Return the start vector's values at ``dims``, clipped to ``value_range`` (the sliders' initial positions)."""
        start = self._start(start_name)
        low, high = self.value_range
        return [min(max(float(start[dim]), low), high) for dim in self.dims]

    def latent(self, start_name: str, values: Sequence[float] | None = None) -> torch.Tensor:
        """Return a copy of the start vector, shape (m,), with ``dims`` set to ``values`` (one per dim, in order).

        ``values=None`` returns the start vector unchanged. Values outside ``value_range`` are
        used as given: the range bounds only the sliders.
        """
        vector = self._start(start_name).clone()
        if values is None:
            return vector
        values = [float(value) for value in values]
        if len(values) != len(self.dims):
            raise ConfigurationError(f"expected {len(self.dims)} values, one per dim {list(self.dims)}, got {len(values)}: {values}")
        bad = [value for value in values if not math.isfinite(value)]
        if bad:
            raise ConfigurationError(f"slider values must be finite, got {bad}")
        vector[list(self.dims)] = torch.tensor(values, dtype=vector.dtype, device=vector.device)
        return vector

    def render(self, start_name: str, values: Sequence[float] | None = None) -> np.ndarray:
        """Decode ``latent(start_name, values)`` into a uint8 image.

        Returns:
            shape (H * scale, W * scale) for grey images, (H * scale, W * scale, 3) for RGB.

        Raises:
            ConfigurationError: ``decode`` returned something other than one (1, C, H, W) image in [0, 1].
        """
        batch = self.latent(start_name, values).unsqueeze(0)
        with torch.no_grad():
            decoded = self.decode(batch)
        image = _check_decoded(decoded, batch.shape[1])
        pixels = np.rint(image.clamp(0.0, 1.0).numpy() * 255.0).astype(np.uint8)  # (C, H, W)
        pixels = pixels.repeat(self.scale, axis=1).repeat(self.scale, axis=2)
        return pixels[0] if pixels.shape[0] == 1 else np.ascontiguousarray(pixels.transpose(1, 2, 0))

    def png(self, start_name: str, values: Sequence[float] | None = None) -> bytes:
        """Return :meth:`render`'s image encoded as PNG."""
        return _encode_png(self.render(start_name, values))

    def widget(self) -> TraversalPanel:
        """Build a new interactive panel (each call returns an independent one) showing the first start."""
        return TraversalPanel(self)

    def _start(self, start_name: str) -> torch.Tensor:
        key = str(start_name)  # the constructor stores names as strings, so starts={3: z} is looked up as "3"
        if key not in self.starts:
            raise ConfigurationError(f"unknown start {start_name!r}; available: {', '.join(map(repr, self.starts))}")
        return self.starts[key]


class TraversalPanel(ipywidgets.VBox):
    """The ipywidgets panel of a :class:`LatentTraversal`.

    Attributes:
        traversal: the :class:`LatentTraversal` it renders.
        dropdown: selects the start; choosing one moves the sliders to that start's values.
        sliders: one ``FloatSlider`` per entry of ``traversal.dims``, in the same order.
        image: the ``ipywidgets.Image`` whose ``value`` contains the current PNG bytes.
        message: an ``ipywidgets.HTML`` line, empty unless the last redraw failed; it then names the error.
    """

    def __init__(self, traversal: LatentTraversal) -> None:
        first = next(iter(traversal.starts))
        low, high = traversal.value_range
        self.traversal = traversal
        self.dropdown = ipywidgets.Dropdown(options=list(traversal.starts), value=first, description="start")
        self.sliders = [
            ipywidgets.FloatSlider(
                value=value, min=low, max=high, step=traversal.step, description=label, readout_format=".2f",
                # Show labels such as "z1[59] (2.89 nats)" in full, and widen the row so that the track stays usable.
                style={"description_width": "initial"},
                layout={"width": "480px"},
            )
            for label, value in zip(traversal.dim_labels, traversal.start_values(first))
        ]
        first_image = traversal.render(first, [slider.value for slider in self.sliders])
        # A fixed size keeps the browser from stretching the image to the output width; render() already scaled it.
        self.image = ipywidgets.Image(value=_encode_png(first_image), format="png", width=str(first_image.shape[1]), height=str(first_image.shape[0]))
        self.message = ipywidgets.HTML(value="")
        self._moving_sliders = False
        super().__init__(children=[self.dropdown, *self.sliders, self.image, self.message])
        self.dropdown.observe(self._on_change, names="value")
        for slider in self.sliders:
            slider.observe(self._on_change, names="value")

    def _on_change(self, change: Mapping[str, Any]) -> None:
        """Re-render the image after the dropdown or a slider changed (the ipywidgets observer).

        An exception from decoding is shown in :attr:`message` and logged; the image keeps its last
        good value. ipywidgets would otherwise send the traceback only to JupyterLab's log console.
        """
        if self._moving_sliders:
            return
        try:
            self._redraw(change)
        except Exception as error:  # noqa: BLE001 - any error from the caller's decode must reach the user
            logger.exception("latent traversal redraw failed")
            self.message.value = f'<span style="color: #b00020">redraw failed: {html.escape(f"{type(error).__name__}: {error}")}</span>'
        else:
            self.message.value = ""

    def _redraw(self, change: Mapping[str, Any]) -> None:
        if change["owner"] is self.dropdown:
            # Move every slider to the new start's values, then render once instead of once per slider.
            self._moving_sliders = True
            try:
                for slider, value in zip(self.sliders, self.traversal.start_values(self.dropdown.value)):
                    slider.value = value
            finally:
                self._moving_sliders = False
        self.image.value = self.traversal.png(self.dropdown.value, [slider.value for slider in self.sliders])


def _encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _validate_starts(starts: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    if not isinstance(starts, Mapping) or len(starts) == 0:
        raise ConfigurationError(f"starts must be a non-empty mapping from a display name to a latent vector of shape (m,), got {starts!r}")
    vectors: dict[str, torch.Tensor] = {}
    for name, value in starts.items():
        vector = torch.as_tensor(value).detach()
        if not vector.is_floating_point():
            vector = vector.to(torch.get_default_dtype())
        if vector.ndim != 1:
            raise ConfigurationError(f"start {name!r} must have shape (m,), got {tuple(vector.shape)}; pass one row, for example z[0]")
        if not bool(torch.isfinite(vector).all()):
            raise ConfigurationError(f"start {name!r} contains NaN or infinite values; check the encoder output it came from")
        vectors[str(name)] = vector
    shapes = {name: tuple(vector.shape) for name, vector in vectors.items()}
    if len(set(shapes.values())) > 1:
        raise ConfigurationError(f"every start must have the same shape (m,), got {shapes}")
    return vectors


def _validate_dims(dims: Sequence[int], latent_size: int) -> tuple[int, ...]:
    try:
        indices = [int(dim) for dim in dims]
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"dims must be a sequence of latent indices, got {dims!r}") from error
    if not indices:
        raise ConfigurationError(f"dims must name at least one latent index in [0, {latent_size}), got {dims!r}")
    outside = [dim for dim in indices if not 0 <= dim < latent_size]
    if outside:
        raise ConfigurationError(f"dims {outside} are outside [0, {latent_size}) for latent vectors of size {latent_size}; use indices 0..{latent_size - 1}")
    if len(set(indices)) != len(indices):
        raise ConfigurationError(f"dims must not repeat an index, got {indices}; give each latent one slider")
    return tuple(indices)


def _validate_range(value_range: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(value) for value in value_range)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"value_range must be a pair (low, high), got {value_range!r}") from error
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigurationError(f"value_range must be finite with low < high, got ({low}, {high}); for example (-2.0, 2.0)")
    return low, high


def _validate_step(step: float, value_range: tuple[float, float]) -> float:
    low, high = value_range
    step = float(step)
    if not (math.isfinite(step) and 0.0 < step <= high - low):
        raise ConfigurationError(f"step must be in (0, {high - low}] (the width of value_range {value_range}), got {step}")
    return step


def _validate_labels(dim_labels: Sequence[str] | Mapping[int, str] | None, dims: tuple[int, ...]) -> tuple[str, ...]:
    if dim_labels is None:
        dim_labels = {}
    if isinstance(dim_labels, Mapping):
        try:
            by_dim = {int(dim): str(label) for dim, label in dim_labels.items()}
        except (TypeError, ValueError) as error:
            raise ConfigurationError(f"dim_labels as a mapping must have latent indices as keys, got {list(dim_labels)}") from error
        unknown = sorted(set(by_dim) - set(dims))
        if unknown:
            raise ConfigurationError(f"dim_labels has labels for {unknown}, which are not in dims {list(dims)}; label only the dims that get a slider")
        return tuple(by_dim.get(dim, f"z[{dim}]") for dim in dims)
    if isinstance(dim_labels, str):
        raise ConfigurationError(f"dim_labels must be a sequence of labels or a mapping from index to label, got the string {dim_labels!r}")
    labels = tuple(str(label) for label in dim_labels)
    if len(labels) != len(dims):
        raise ConfigurationError(f"dim_labels needs one label per dim: {len(dims)} dims {list(dims)}, got {len(labels)} labels {list(labels)}")
    return labels


def _check_decoded(decoded: Any, latent_size: int) -> torch.Tensor:
    """Return the single decoded image as a float CPU tensor (C, H, W), or raise naming what is wrong."""
    if not isinstance(decoded, torch.Tensor):
        raise ConfigurationError(f"decode must return a torch.Tensor of shape (B, C, H, W), got {type(decoded).__name__}")
    shape = tuple(decoded.shape)
    if decoded.ndim != 4 or shape[0] != 1 or shape[1] not in (1, 3):
        raise ConfigurationError(
            f"decode returned shape {shape} for a (1, {latent_size}) latent batch; expected (1, C, H, W) with C = 1 or 3, "
            "for example reshape flat MNIST output with .view(-1, 1, 28, 28)"
        )
    image = decoded[0].detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(image).all()):
        raise ConfigurationError("decode returned NaN or infinite pixel values; check the model and the latent values")
    low, high = float(image.min()), float(image.max())
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise ConfigurationError(
            f"decode must return pixel values in [0, 1], got values in [{low:.3g}, {high:.3g}]; "
            "apply torch.sigmoid to logits or .clamp(0, 1) to a mean-squared-error decoder's output"
        )
    return image
