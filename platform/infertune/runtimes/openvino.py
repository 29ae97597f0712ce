"""OpenVINO on the CPU: fp32, fp16 and bf16 kernels, and int8 quantized by NNCF.

Conversion (``openvino.convert_model`` on the model's serving ``tf.function``) and NNCF
post-training quantization run in the build worker, where TensorFlow is; timing imports only
``openvino``, never TensorFlow. The artifact is an OpenVINO IR folder (``model.xml`` and
``model.bin``) that records the precision it was built for; the loader
(:mod:`infertune.runtimes.openvino_loader`) turns it into the CPU plugin's inference
precision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from infertune.exceptions import BuildError, InputError
from infertune.runtimes._base import Calibration, Precision, Progress, Runner, RuntimeBackend


class OpenVINOBackend(RuntimeBackend):
    """``openvino``: the OpenVINO CPU plugin running an IR, with the latency hint.

    Precisions:
        ``fp32``: f32 weights and kernels (the plugin's bf16 default on CPUs with bf16 units
        is turned off, so fp32 means fp32).
        ``fp16``: the same fp32 IR run with f16 *kernels* (the inference precision hint)
        where the CPU has them; a kernel precision, not a size change: the file is the fp32
        one. Where the CPU has no f16 kernels it runs f32, and the measurement's runtime
        settings say so.
        ``bf16``: the same with bf16 kernels, on CPUs with bf16 units (AMX, AVX512_BF16);
        elsewhere f32, and the measurement's runtime settings say so.
        ``int8``: NNCF post-training quantization (int8 weights and activations where NNCF
        places quantizers, full bias correction), calibrated on representative inputs; float
        I/O.
    """

    name: ClassVar[str] = "openvino"
    title: ClassVar[str] = "OpenVINO"
    precisions: ClassVar[tuple[Precision, ...]] = (
        Precision.FP32,
        Precision.FP16,
        Precision.BF16,
        Precision.INT8,
    )
    family: ClassVar[str] = "openvino"
    artifact_file: ClassVar[str | None] = "openvino"
    worker_group: ClassVar[str] = "openvino"
    loader_module: ClassVar[str] = "infertune.runtimes.openvino_loader"
    runtime_modules: ClassVar[tuple[str, ...]] = ("openvino",)
    threads_setting: ClassVar[str] = "inference_num_threads"
    libraries: ClassVar[tuple[str, ...]] = ("openvino",)
    build_libraries: ClassVar[tuple[str, ...]] = (
        "tensorflow-cpu",
        "tensorflow",
        "keras",
        "openvino",
        "nncf",
    )

    def needs_calibration(self, precision: Precision) -> bool:
        """int8 is calibrated on representative inputs; the float precisions are not."""
        return precision is Precision.INT8

    def build(
        self,
        source: Path,
        source_format: str,
        out_path: Path,
        precision: Precision,
        calibration: Calibration | None,
        progress: Progress,
    ) -> dict[str, Any]:
        """Convert to an OpenVINO IR folder, quantized with NNCF for int8.

        See :meth:`RuntimeBackend.build`. ``out_path`` becomes a folder holding
        ``model.xml`` and ``model.bin`` (fp32 weights, or int8 ones for ``int8``).
        """
        from infertune.runtimes._tfgraph import serving_function
        from infertune.runtimes.openvino_loader import IR_FILE, PRECISION_RT_INFO
        from infertune.workers.server import one_line
        from infertune.workers.startup import timed_import

        serving = serving_function(source, source_format)
        ov = timed_import("openvino")
        progress(f"converting to OpenVINO ({precision})")
        try:
            model = ov.convert_model(serving.function)
        except Exception as exc:
            raise BuildError(f"OpenVINO conversion failed: {one_line(exc)}") from exc
        details: dict[str, Any] = {}
        if precision is Precision.INT8:
            if calibration is None:
                raise BuildError("OpenVINO int8 quantization needs calibration data.")
            # One item per sample: a batch of one, or one such batch per input (model order).
            xs = calibration.load_inputs(serving.input_dtypes)
            count = len(xs[0])
            items: list[Any] = [
                xs[0][i : i + 1] if len(xs) == 1 else [x[i : i + 1] for x in xs]
                for i in range(count)
            ]
            progress(f"quantizing with NNCF ({count} calibration samples)")
            nncf = timed_import("nncf")
            try:
                model = nncf.quantize(
                    model,
                    nncf.Dataset(items),
                    subset_size=count,
                    # The full bias correction: on the demo CNN the fast one left top-1
                    # agreement with fp32 at 94.7%, the full one at 99.4%, for 0.5 s more.
                    fast_bias_correction=False,
                )
            except Exception as exc:
                raise BuildError(f"NNCF int8 quantization failed: {one_line(exc)}") from exc
            details["calibration_samples"] = count
        model.set_rt_info(str(precision), PRECISION_RT_INFO)
        out_path.mkdir(parents=True, exist_ok=True)
        # compress_to_fp16 defaults to True: keep the weights as they are.
        ov.save_model(model, str(out_path / IR_FILE), compress_to_fp16=False)
        size = sum(p.stat().st_size for p in out_path.iterdir() if p.is_file())
        return {"size_bytes": size, **details}

    def load(self, artifact: str, threads: int | None) -> Runner:
        """Compile the IR for the CPU with ``threads`` inference threads.

        Called in an OpenVINO measurement worker (see :meth:`RuntimeBackend.load`); imports
        ``openvino`` only.
        """
        from infertune.workers.startup import timed_import

        timed_import("openvino")  # counted as start-up
        loader = self.loader()
        try:
            runner: Runner = loader.load(artifact, self.name, threads)
        except loader.UnsupportedModel as exc:
            raise InputError(str(exc)) from exc
        return runner
