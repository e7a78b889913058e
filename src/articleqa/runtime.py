"""Inference runtimes: the reader's QA weights run by PyTorch or by ONNX Runtime (and the ONNX export cache and
sessions the embedder shares, which is why the module is not named for the reader alone).

A runtime takes one padded batch of features (``input_ids``, ``attention_mask``, ``token_type_ids`` as
int64 numpy arrays) and returns the start and end logits as float32 numpy arrays; the reader does the
rest (windows, offsets, best spans) the same way for every runtime. Which one runs is chosen when the
reader loads, from what the machine offers and what the model folder validated:

==========================  ==================================================================
path (``Runtime.name``)     when ``backend="auto"``, ``quantize="auto"``
==========================  ==================================================================
``torch bf16``              the model validated bf16 (``articleqa_reader.json``
                            ``inference.quantize``) and the CPU has AMX or AVX512-BF16 (or CUDA)
``onnxruntime fp32``        otherwise, where onnxruntime is installed: the graph exported with
                            fused attention, layer norms and GELU; same numbers as torch fp32,
                            about twice as fast on CPU
``onnxruntime int8``        as above where the model validated int8 (or ``quantize="int8"``):
                            dynamic int8, per-channel weight scales, the feed-forward
                            down-projections kept fp32
``torch fp32``              without onnxruntime, or where the export fails (a warning says why)
==========================  ==================================================================

The ONNX graph is exported from the torch weights on first use into a cache folder (``ARTICLEQA_CACHE``,
default ``~/.cache/articleqa``; about 10 s, once per model and recipe), so any Hugging Face QA model runs
on it, not only the shipped one.

Example::

    backend, precision = choose_path(read_reader_meta("models/reader"))  # ('onnx', 'fp32') without bf16 units
    runtime = load_runtime("models/reader", load_fp32_model, backend, precision)
    runtime.name                    # 'onnxruntime fp32'
    start, end = runtime(features)  # float32 arrays of shape (batch, sequence)
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
QUANTIZE = ("auto", "none", "int8", "bf16")
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
QA_OUTPUTS = ("start_logits", "end_logits")
EXPORT_RECIPE = "2026-11-23b named-io, eager-attention fused, opset 17, int8 per-channel ffn-out fp32"


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def bf16_is_fast() -> bool:
    """bf16 matrix units: a CUDA GPU, or a CPU with AMX or AVX512-BF16."""
    import torch

    if torch.cuda.is_available():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@dataclass
class TorchRuntime:
    """A ``transformers`` QA model in fp32, bf16 or torch's dynamic int8."""

    model: Any
    precision: str  # "fp32" | "bf16" | "int8"

    @property
    def name(self) -> str:
        return f"torch {self.precision}"

    def __call__(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        device = _device_of(self.model)
        with torch.inference_mode():
            out = self.model(**{k: torch.from_numpy(v).to(device) for k, v in features.items()})
        return out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()


class OnnxRuntime:
    """An ONNX graph of a QA model in an ``onnxruntime.InferenceSession`` (CPU, all graph optimizations)."""

    def __init__(self, path: str | Path, precision: str, threads: int | None = None):
        self.path = Path(path)
        self.precision = precision
        self.session = new_session(path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]

    @property
    def name(self) -> str:
        return f"onnxruntime {self.precision}"

    def __call__(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.session.run(list(QA_OUTPUTS), onnx_feed(self.inputs, features))
        return start, end


def new_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session with all graph optimizations and no busy-waiting threads (spinning
    threads would steal the cores from torch work and the next request on a small machine)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or _torch_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def choose_path(meta: dict, backend: str = "auto", quantize: str = "auto") -> tuple[str, str]:
    """(backend, precision) to run, from the settings, the model's validated record and the machine.

    ``meta`` is the model folder's ``articleqa_reader.json`` (``{}`` for foreign models); its
    ``inference.quantize`` is the precision validated against fp32 on held-out articles. ``auto``:
    torch bf16 where that was validated and the hardware has bf16 units (the fastest path there), else
    ONNX Runtime where it is installed (int8 where validated, else fp32: the same numbers as torch fp32,
    twice as fast), else torch fp32.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown reader backend {backend!r}: use {', '.join(BACKENDS)}")
    if quantize not in QUANTIZE:
        raise ValueError(f"unknown quantize mode {quantize!r}: use {', '.join(QUANTIZE)}")
    precision = meta.get("inference", {}).get("quantize", "none") if quantize == "auto" else quantize
    precision = "fp32" if precision in ("none", "", None) else precision
    if precision == "bf16" and not bf16_is_fast():
        if quantize == "bf16" or backend == "torch":
            log.info("bf16 inference needs a GPU or a CPU with AMX/AVX512-BF16; using fp32")
        precision = "fp32"
    if backend == "auto":
        backend = "onnx" if precision != "bf16" and onnxruntime_available() else "torch"
    if backend == "onnx":
        if not onnxruntime_available():
            raise RuntimeError("the onnx reader backend needs onnxruntime: pip install onnxruntime")
        if precision == "bf16":
            raise ValueError("bf16 runs on the torch backend: use backend torch, or quantize int8/none with onnx")
    return backend, precision


def load_runtime(
    model_dir: str,
    model_loader: Callable[[], Any],
    backend: str,
    precision: str,
    fallback: bool = False,
    threads: int | None = None,
):
    """The runtime for (``backend``, ``precision``) from :func:`choose_path`; ``model_loader()`` gives
    the fp32 torch model. ``fallback``: where the ONNX export or load fails (an architecture the
    exporter does not know), say so and run torch instead."""
    if backend == "onnx":
        try:
            return OnnxRuntime(cached_onnx(model_dir, model_loader, precision), precision, threads)
        except Exception as exc:
            if not fallback:
                raise
            log.warning(
                "ONNX Runtime path unavailable for %s (%s: %s); running torch %s",
                model_dir,
                type(exc).__name__,
                exc,
                precision,
            )
    model = model_loader()
    if precision == "int8":
        model = quantize_int8(model)
    elif precision == "bf16":
        import torch

        model = model.to(torch.bfloat16)
    return TorchRuntime(model, precision)


def quantize_int8(model):
    """torch's dynamic int8 quantization of the Linear layers (CPU inference)."""
    import torch

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def onnx_feed(input_names: list[str], features) -> dict[str, np.ndarray]:
    """The int64 inputs a BERT-style ONNX graph takes, from tokenizer output; token types are zeros
    where the graph wants them and the tokenizer gave none."""
    feed = {k: np.asarray(features[k], dtype=np.int64) for k in input_names if k in features}
    if "token_type_ids" in input_names and "token_type_ids" not in feed:
        feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
    return feed


def export_onnx(
    model, out: str | Path, precision: str = "int8", sample=None, outputs: tuple[str, ...] = QA_OUTPUTS
) -> Path:
    """Write ``model`` (a fp32 ``transformers`` model: a QA model, or an encoder with
    ``outputs=("last_hidden_state",)``) as an ONNX graph at ``out``.

    The graph is exported with dynamic batch and sequence axes, its attention, layer norms and GELUs
    fused by ONNX Runtime's transformer optimizer, and for ``int8`` its MatMul weights quantized
    dynamically with one scale per output channel (activations are quantized per batch at run time).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), _quiet_root_logger():  # tracer and quantizer advice, not errors
        warnings.simplefilter("ignore")
        return _export(model, out, precision, sample, outputs)


def _export(model, out: Path, precision: str, sample, outputs: tuple[str, ...]) -> Path:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    tmp = out.with_name(out.stem + ".fp32.tmp.onnx")
    fused = out.with_name(out.stem + ".fused.tmp.onnx")
    length = 16
    inputs = sample or {
        "input_ids": torch.ones((1, length), dtype=torch.long),
        "attention_mask": torch.ones((1, length), dtype=torch.long),
        "token_type_ids": torch.zeros((1, length), dtype=torch.long),
    }
    accepted = inspect.signature(model.forward).parameters
    names = [k for k in ONNX_INPUTS if k in inputs and k in accepted]
    axes = {k: {0: "batch", 1: "sequence"} for k in (*names, *outputs)}
    model = model.float().eval()
    before = getattr(model.config, "_attn_implementation", None)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # the plain attention graph ONNX Runtime fuses into one op

    class NamedIO(torch.nn.Module):
        """Positional tensors in, the named outputs out: the graph's signature, whatever the model's
        forward takes besides (caches, flags) and returns besides (pooler output, hidden states)."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            out = self.model(**dict(zip(names, tensors)), return_dict=True)
            return tuple(out[k] for k in outputs)

    try:
        with torch.inference_mode():
            torch.onnx.export(
                NamedIO(),
                tuple(inputs[k] for k in names),
                str(tmp),
                input_names=names,
                output_names=list(outputs),
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        config = model.config
        opt = optimizer.optimize_model(
            str(tmp),
            model_type="bert",
            num_heads=getattr(config, "num_attention_heads", 0),
            hidden_size=getattr(config, "hidden_size", 0),
        )
        if precision == "int8":
            import onnx

            opt.save_model_to_file(str(fused))
            # the feed-forward down-projections stay fp32: their inputs (GELU outputs) have the outliers
            # that cost most F1 under per-tensor activation scales (validated: F1 -0.7 instead of -1.2)
            keep = [
                n.name
                for n in opt.model.graph.node
                if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name
            ]
            quantize_dynamic(
                str(fused),
                str(out),
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=keep,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        elif precision == "fp32":
            opt.save_model_to_file(str(out))
        else:
            raise ValueError(f"ONNX export supports int8 and fp32, not {precision!r}")
    finally:
        for f in (tmp, fused):
            f.unlink(missing_ok=True)
        if before and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(before)
    return out


@contextmanager
def _quiet_root_logger():
    """onnxruntime's quantizer logs its advice on the root logger ("Please consider to run pre-processing")."""
    root = logging.getLogger()
    advice = logging.Filter()
    advice.filter = lambda record: "pre-processing before quantization" not in record.getMessage()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def cache_dir() -> Path:
    return Path(os.environ.get("ARTICLEQA_CACHE") or Path.home() / ".cache" / "articleqa")


def cached_onnx(
    model_dir: str, model_loader: Callable[[], Any], precision: str, outputs: tuple[str, ...] = QA_OUTPUTS
) -> Path:
    """The ONNX graph of ``model_dir`` at ``precision``, exported once into the cache folder."""
    key = _model_key(model_dir)  # includes EXPORT_RECIPE: a new recipe exports again
    kind = "" if outputs == QA_OUTPUTS else "encoder_"
    path = cache_dir() / "onnx" / key / f"{kind}model_{precision}.onnx"
    if not path.is_file():
        log.info("exporting %s to ONNX (%s) into %s, once", model_dir, precision, path.parent)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.onnx")
        export_onnx(model_loader(), partial, precision, outputs=outputs)
        os.replace(partial, path)  # concurrent exporters: the last complete file wins, never a torn one
    return path


def _model_key(model_dir: str) -> str:
    """Names the cache entry: the model id or folder, and for folders the size and time of each file."""
    h = hashlib.sha256(
        EXPORT_RECIPE.encode() + str(Path(model_dir).resolve() if Path(model_dir).is_dir() else model_dir).encode()
    )
    folder = Path(model_dir)
    if folder.is_dir():
        for f in sorted(folder.iterdir()):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _device_of(model):
    try:
        return next(model.parameters()).device
    except StopIteration:
        return "cpu"


def _torch_threads() -> int:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return os.cpu_count() or 1
