import pytest

from infertune.measure.efficiency import efficiency, peak_gflops_per_core
from infertune.models.graph import count_macs

keras = pytest.importorskip("keras")


def test_macs_of_conv_depthwise_and_dense_layers() -> None:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, padding="same"),  # 64 positions x 3*3*3*4
            keras.layers.DepthwiseConv2D(3, padding="valid"),  # 36 positions x 3*3*4*1
            keras.layers.Flatten(),
            keras.layers.Dense(5),  # 144 x 5
        ]
    )
    assert count_macs(model) == 64 * 108 + 36 * 36 + 144 * 5


def test_efficiency_counts_two_flops_per_mac_and_samples_per_batch() -> None:
    result = efficiency(
        macs=10**9, batch_size=4, latency_mean_ms=100.0, precision="fp32", threads=1
    )
    assert result["gflops"] == pytest.approx(80.0)  # 2 * 1e9 * 4 / 0.1 s
    peak = peak_gflops_per_core()
    if peak is not None:
        assert result["peak_pct"] == pytest.approx(100 * 80.0 / peak["fp32"])
        int8 = efficiency(10**9, 4, 100.0, "int8", 1)["peak_pct"]
        assert int8 is not None and int8 < result["peak_pct"]
    assert efficiency(None, 1, 1.0, "fp32", None) == {"gflops": None, "peak_pct": None}
