"""The runtime contract, checked for every registered backend and each of its precisions.

Build in the build worker (cached), load in a measurement worker that imports only its
runtime, output shape, agreement with the fp32 model, threads honoured, and the promoted
pyfunc model's round trip in a fresh process that cannot import infertune.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import infertune.promotion
from infertune.hashing import size_bytes
from infertune.knobs.spec import InferenceConfig, Runtime
from infertune.measure.engine import PREDICT_TIMEOUT, Engine, Subject
from infertune.runtimes import Precision, RuntimeBackend, backend_names, get_backend
from infertune.workers.protocol import PingRequest, PredictRequest
from tests.conftest import QUICK
from tests.multiio import MultiIO

PYFUNC_FILE = Path(infertune.promotion.__file__).with_name("pyfunc_model.py")
CASES = [
    pytest.param(
        name,
        precision,
        id=f"{name}-{precision}",
        # One pyfunc round trip per runtime runs by default; the other precisions are slow.
        marks=[] if precision is Precision.FP32 else [pytest.mark.slow],
    )
    for name in backend_names()
    for precision in get_backend(name).precisions
]
#: Minimum top-1 agreement with the fp32 model on the demo's evaluation set.
MIN_AGREEMENT = {Precision.FP32: 0.999, Precision.FP16: 0.99}
ALL_RUNTIME_MODULES = sorted({m for n in backend_names() for m in get_backend(n).runtime_modules})


def _config(name: str, precision: Precision, **values: object) -> InferenceConfig:
    return InferenceConfig.parse(runtime=name, precision=str(precision), **values)


def test_the_runtime_knob_names_exactly_the_registered_backends() -> None:
    assert [str(r) for r in Runtime] == backend_names()
    for name in backend_names():
        backend = get_backend(name)
        assert isinstance(backend, RuntimeBackend) and backend.name == name
        assert backend.precisions[0] is Precision.FP32
        assert backend.runtime_modules and backend.libraries
        assert (backend.artifact_file is None) == (backend.family == "keras")


@pytest.mark.parametrize("name", backend_names())
def test_loader_module_is_self_contained(name: str) -> None:
    """A promoted model ships the loader: it imports the runtime, never infertune."""
    backend = get_backend(name)
    tree = ast.parse(backend.loader_file().read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    tops = {m.split(".")[0] for m in imported}
    allowed = set(sys.stdlib_module_names) | {"numpy", "__future__", *backend.runtime_modules}
    assert tops <= allowed, tops - allowed


def test_unknown_precision_is_refused_by_the_backend() -> None:
    with pytest.raises(ValueError, match="runtime 'tf' runs fp32 only"):
        get_backend("tf").check_precision(Precision.INT8)


@pytest.mark.parametrize(("name", "precision"), CASES)
def test_backend_builds_loads_and_agrees_with_fp32(
    engine: Engine, cnn: Subject, tmp_path: Path, name: str, precision: Precision
) -> None:
    backend = get_backend(name)
    config = _config(name, precision, threads=1)
    variant = engine.variant(cnn, config)
    if backend.artifact_file is not None:
        assert variant.path.name == backend.artifact_file  # a file or a folder
        assert variant.meta["size_bytes"] == size_bytes(variant.path) > 0
        assert variant.family == backend.family
    else:
        assert variant.path == cnn.source.path
    # Loaded and run in a measurement worker of the backend's group, one thread.
    worker = engine.measure_worker(name, 1)
    out = tmp_path / "predictions.npy"
    answer = worker.request(
        PredictRequest(
            artifact=str(variant.path),
            runtime=name,
            data_path=str(cnn.eval_data.path),
            x_keys=cnn.x_keys,
            out_path=str(out),
        ),
        timeout=PREDICT_TIMEOUT,
    )
    reference = engine.reference_predictions(cnn)
    assert tuple(answer.shape) == reference.shape == np.load(out).shape
    scores = engine.evaluate(cnn, variant, config)
    assert scores.agreement is not None
    assert scores.agreement >= MIN_AGREEMENT.get(precision, 0.95)
    # Threads honoured, and the worker imported only its own runtime.
    timing = engine.time(cnn, variant, config, QUICK)
    assert timing.valid and timing.runtime_settings[backend.threads_setting] == 1
    imported = worker.request(PingRequest(modules=ALL_RUNTIME_MODULES), timeout=60).imported
    assert set(imported) <= set(backend.runtime_modules), imported


_SERVE = """
import sys
sys.modules["infertune"] = None  # a served model must not need infertune
import numpy as np
import mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))
heavy = sys.argv[4].split(",")
print(",".join(m for m in heavy if m in sys.modules))
"""


@pytest.mark.parametrize(("name", "precision"), CASES)
def test_pyfunc_round_trip_without_infertune(
    engine: Engine, cnn: Subject, tmp_path: Path, name: str, precision: Precision
) -> None:
    import mlflow.pyfunc

    backend = get_backend(name)
    config = _config(name, precision, threads=1, batch_size=4)
    variant = engine.variant(cnn, config)
    options = backend.pyfunc_options(precision, threads=1, batch_size=4)
    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=str(PYFUNC_FILE),
        artifacts={"variant": str(variant.path)},
        **options,
    )
    assert (model_dir / "code" / backend.loader_file().name).is_file()
    requirements = (model_dir / "requirements.txt").read_text()
    assert "infertune" not in requirements
    assert any(lib in requirements for lib in backend.libraries)

    x = cnn.eval_data.load_x(limit=10)
    x_path, out = tmp_path / "x.npy", tmp_path / "served.npy"
    np.save(x_path, x)
    heavy = ",".join(ALL_RUNTIME_MODULES)
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE, str(model_dir), str(x_path), str(out), heavy],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert set(filter(None, loaded.split(","))) <= set(backend.runtime_modules)
    served = np.load(out)
    reference = engine.reference_predictions(cnn)[:10]
    assert served.shape == reference.shape
    agreement = np.mean(served.argmax(axis=1) == reference.argmax(axis=1))
    assert agreement >= 0.9


# -- a model with two inputs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_input(engine: Engine, multiio: MultiIO) -> Subject:
    """The two-input digits model (image and features), its arrays named after its inputs."""
    return engine.resolve(str(multiio.two_input), multiio.eval_named, multiio.train_named)


@pytest.mark.parametrize(("name", "precision"), CASES)
def test_two_input_model_builds_loads_and_agrees_with_fp32(
    engine: Engine, two_input: Subject, tmp_path: Path, name: str, precision: Precision
) -> None:
    config = _config(name, precision, threads=1, batch_size=3)
    variant = engine.variant(two_input, config)
    out = tmp_path / "predictions.npy"
    answer = engine.measure_worker(name, 1).request(
        PredictRequest(
            artifact=str(variant.path),
            runtime=name,
            data_path=str(two_input.eval_data.path),
            x_keys=two_input.x_keys,
            out_path=str(out),
            batch_size=7,  # a last, smaller batch too
        ),
        timeout=PREDICT_TIMEOUT,
    )
    reference = engine.reference_predictions(two_input)
    assert tuple(answer.shape) == reference.shape == (two_input.eval_data.size, 10)
    scores = engine.evaluate(two_input, variant, config)
    assert scores.agreement is not None
    assert scores.agreement >= MIN_AGREEMENT.get(precision, 0.95)
    timing = engine.time(two_input, variant, config, QUICK)
    assert timing.valid and timing.batch_size == 3


_SERVE_DICT = """
import sys
sys.modules["infertune"] = None  # a served model must not need infertune
import numpy as np
import mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
with np.load(sys.argv[2]) as data:
    inputs = {name: data[name] for name in data.files}
np.save(sys.argv[3], model.predict(inputs))
try:
    model.predict({"image": inputs["image"]})
except Exception as exc:
    print("refused:", exc)
"""


@pytest.mark.parametrize(("name", "precision"), CASES)
def test_two_input_pyfunc_takes_a_dict_by_input_name(
    engine: Engine, two_input: Subject, tmp_path: Path, name: str, precision: Precision
) -> None:
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    backend = get_backend(name)
    variant = engine.variant(two_input, _config(name, precision, threads=1, batch_size=4))
    sample = two_input.serving_sample(10)
    assert isinstance(sample, dict)
    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=str(PYFUNC_FILE),
        artifacts={"variant": str(variant.path)},
        # The signature as the promotion records it: the inputs by name.
        signature=infer_signature(sample, engine.reference_predictions(two_input)[:10]),
        **backend.pyfunc_options(precision, threads=1, batch_size=4),
    )
    inputs = {"features": sample["features"], "image": sample["image"]}  # any key order
    x_path, out = tmp_path / "x.npz", tmp_path / "served.npy"
    np.savez(x_path, **inputs)
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE_DICT, str(model_dir), str(x_path), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused:" in proc.stdout and "features" in proc.stdout
    served = np.load(out)
    reference = engine.reference_predictions(two_input)[:10]
    assert served.shape == reference.shape
    assert np.mean(served.argmax(axis=1) == reference.argmax(axis=1)) >= 0.9
