import optuna

from infertune.knobs.spec import InferenceConfig
from infertune.space.loader import load_space
from infertune.space.schema import SearchSpace
from infertune.tuning.sampling import config_params, space_size, suggest_config


def _space(**knobs: object) -> SearchSpace:
    # Offline: the scenario where batch size matters (single stream refuses it).
    return SearchSpace.model_validate(
        {
            "knobs": knobs,
            "objectives": {"latency_p95_ms": "minimize"},
            "measurement": {"scenario": "offline"},
        }
    )


def test_conditional_knob_is_sampled_only_when_its_condition_holds() -> None:
    space, _ = load_space("quick")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        config = suggest_config(trial, space)
        seen.add((config.runtime.value, config.precision.value))
        precision_params = [p for p in trial.params if p.startswith("precision")]
        if config.runtime == "tf":
            assert not precision_params and config.precision == "fp32"
        else:
            assert len(precision_params) == 1
        study.tell(trial, 0.0)
    assert ("tf", "fp32") in seen and ("tflite", "int8") in seen
    assert not any(r == "tf" and p != "fp32" for r, p in seen)
    # Each runtime is offered only the precisions it has (OpenVINO has no int8_dynamic).
    assert ("openvino", "int8") in seen and ("onnxruntime", "int8_dynamic") in seen
    assert ("openvino", "int8_dynamic") not in seen


def test_space_size_counts_conditional_branches() -> None:
    space, _ = load_space("quick")
    # tf: 3 prune ratios; tflite and onnxruntime: 3 precisions x 3 prune ratios each;
    # openvino: 2 precisions (no int8_dynamic) x 3 prune ratios
    assert space_size(space) == 3 + 9 + 9 + 6


def test_pow2_knob_and_params_round_trip() -> None:
    space = _space(
        runtime={"type": "categorical", "choices": ["tflite"]},
        batch_size={"type": "pow2", "low": 2, "high": 16},
        threads={"type": "int", "low": 1, "high": 1},
    )
    assert space_size(space) == 4
    config = InferenceConfig.parse(runtime="tflite", batch_size=8, threads=1)
    params = config_params(config, space)
    assert params == {"runtime": "tflite", "batch_size_log2": 3, "threads": 1}
    study = optuna.create_study()
    study.enqueue_trial(params)
    assert suggest_config(study.ask(), space) == config


def test_grid_covers_every_configuration_once() -> None:
    space, _ = load_space("quick")
    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    configs = []
    study.optimize(
        lambda t: configs.append(suggest_config(t, space)) or 0.0, n_trials=space_size(space) + 5
    )
    assert len(configs) == len(set(configs)) == space_size(space)


def test_serving_knobs_are_sampled_enumerated_and_round_trip() -> None:
    space, _ = load_space("serving")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        config = suggest_config(trial, space)
        seen.add((config.instances, config.max_queue_delay_ms))
        # The parameters that would sample this configuration give it back.
        assert config_params(config, space) == {
            k: v for k, v in trial.params.items() if k in config_params(config, space)
        }
        study.tell(trial, [1.0, 1.0])
    assert {i for i, _ in seen} == {1, 2} and {d for _, d in seen} == {0.0, 1.0}
    assert space_size(space) == 3 * 2 * 3 * 5 * 2 * 2 * len(range(1, 1 + _cores()))


def _cores() -> int:
    from infertune.measure.fingerprint import usable_cores

    return usable_cores()
