"""``--compile``: the backend the execution picks, and a compiled run through the trainer.

All ``slow``: importing Inductor alone takes 2-3 s on 2 cores, and compiling tens of seconds."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import cpu_file
from torch.profiler import profile

from benchmark import hardware, inductor, runs
from benchmark.config import TrainConfig

pytestmark = pytest.mark.slow
CPU = torch.device("cpu")
# Inductor writes C++ for the CPU and builds it with $CXX, else g++
compiles = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "g++")) is None, reason="no C++ compiler for Inductor"
)


@pytest.mark.parametrize("scatter", [True, False])
def test_the_cpu_compiles_max_pooling_backward_as_a_gather_where_torch_scatters(
    scatter: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where torch decomposes max-pooling's backward into a scatter (2.14 does), the CPU
    compiles through the gather backend; elsewhere, and on other devices, plain Inductor."""
    import torch._inductor.decomposition as decomposition

    table = {inductor.MAX_POOL_BACKWARD: None} if scatter else {}
    monkeypatch.setattr(decomposition, "select_decomp_table", lambda: table)
    chosen = inductor.compile_backend(CPU)
    assert chosen == (inductor.inductor_gather_max_pool if scatter else "inductor")
    assert inductor.compile_backend(torch.device("meta")) == "inductor"


@pytest.fixture
def compile_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The keyword arguments of each call the backend makes to Inductor (which is not run)."""
    calls: list[dict] = []
    monkeypatch.setattr(
        "torch._inductor.compile_fx.compile_fx", lambda gm, inputs, **kw: calls.append(kw)
    )
    return calls


@pytest.mark.parametrize("pooled", [True, False])
def test_only_a_graph_with_max_pooling_changes_the_decompositions(
    pooled: bool, compile_calls: list[dict]
) -> None:
    """The change costs Inductor's caches, so a graph without max-pooling keeps them."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2) if pooled else x.relu()

    inductor.inductor_gather_max_pool(torch.fx.symbolic_trace(fn), [torch.zeros(1, 1, 4, 4)])
    (kwargs,) = compile_calls
    table = kwargs.get("decompositions")
    assert (table is not None) == pooled
    assert table is None or inductor.MAX_POOL_BACKWARD not in table


def test_an_execution_that_does_not_compile_hands_the_function_back() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return x

    assert hardware.Execution(CPU).compiled(fn) is fn
    assert hardware.Execution(CPU, compile=True).compiled(fn) is not fn


@compiles
def test_compiled_max_pooling_runs_no_scatter_and_gives_eager_gradients() -> None:
    """The CPU backend's reason to exist: no scatter kernel in the backward, same gradients."""

    def loss(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x.relu(), 2).square().sum()

    torch.compiler.reset()
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    compiled = hardware.Execution(CPU, compile=True).compiled(loss)
    with profile() as prof:
        compiled(x).backward()
    grad, x.grad = x.grad, None
    loss(x).backward()
    assert torch.equal(grad, x.grad)
    ran = {event.key for event in prof.key_averages()}
    assert not {key for key in ran if "scatter" in key}, ran


@compiles
def test_a_compiled_run_trains_and_records_its_compile_time(synthetic, tmp_path: Path) -> None:
    cfg = TrainConfig(
        arch="small_cnn", fusion="concat", epochs=1, train_subset=512, batch_size=64, compile=True
    )
    torch.compiler.reset()
    cfg, ex = hardware.decide(replace(cfg, threads=torch.get_num_threads()))
    run_dir = runs.start_run(cfg, tmp_path)
    data = replace(synthetic, val=synthetic.val.subset(500), test=synthetic.test.subset(500))
    runs.execute(cfg, data, run_dir, ex)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert json.loads((run_dir / "config.json").read_text())["compile"] is True
    assert metrics["compile_seconds"] > 0
    assert metrics["test"]["pairs"] == 10 * 500  # every test image was scored


@compiles
def test_bench_compile_ab_compiles_and_reports_the_training_compile_apart(tmp_path: Path) -> None:
    """``bench --compile-ab``: an eager row and a compiled one, the compiled one with every
    compile in ``compile_seconds``, the training step's (what a compiled run pays) in
    ``train_compile_seconds`` and its speed over eager's per round."""
    import pandas as pd

    from benchmark.cli import main

    argv = ["bench", "--arch", "small_cnn", "--fusion", "late_sum", "--compile-ab", "2"]
    argv += ["--device", "cpu", "--precision", "fp32", "--no-channels-last"]
    argv += ["--infer-batch-size", "8", "--batch-size", "8", "--warmup-calls", "1", "--iters", "2"]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 0
    eager, row = pd.read_csv(cpu_file(tmp_path, "bench", "fp32", ".csv")).to_dict("records")
    assert math.isnan(eager["compile_seconds"]) and row["compile"]  # eager: none, blank
    assert 0 < row["train_compile_seconds"] < row["compile_seconds"]
    assert row["ab_rounds"] == 2 and row["ab_ratio"] > 0


def test_compiling_for_the_cpu_hides_only_torchs_no_gpu_notice() -> None:
    """A CUDA build of torch on a CPU-only machine says "No CUDA runtime is found" when Inductor
    imports its C++ tools: noise to a CPU user. Its other warnings still come through."""
    import logging

    inductor.compile_backend(torch.device("cpu"))
    log = logging.getLogger("torch.utils.cpp_extension")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        log.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local")
        log.warning("Your compiler (c++) is not compatible")
    finally:
        log.removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["Your compiler (c++) is not compatible"]


def test_a_graph_with_max_pooling_compiles_with_aotautograds_cache_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AOTAutograd's cache key leaves the decomposition table out: left on, it would serve the
    graph compiled with the scatter. Off while the changed table compiles, and only then."""
    import torch._functorch.config as functorch_config

    seen: list[bool] = []
    monkeypatch.setattr(
        "torch._inductor.compile_fx.compile_fx",
        lambda gm, inputs, **kw: seen.append(functorch_config.enable_autograd_cache),
    )
    before = functorch_config.enable_autograd_cache
    pooled = torch.fx.symbolic_trace(lambda x: F.max_pool2d(x, 2))
    inductor.inductor_gather_max_pool(pooled, [torch.zeros(1, 1, 4, 4)])
    assert seen == [False]
    assert functorch_config.enable_autograd_cache == before


@pytest.mark.parametrize(
    "pool",
    [F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d],
    ids=["F.max_pool2d", "F.max_pool2d_with_indices", "torch.max_pool2d"],
)
def test_each_max_pooling_a_graph_may_call_changes_the_decompositions(
    pool: object, compile_calls: list[dict]
) -> None:
    """Dynamo's graph names max-pooling by any of three functions: each takes the gather."""
    graph = torch.fx.Graph()
    graph.output(graph.call_function(pool, (graph.placeholder("x"), 2)))
    gm = torch.fx.GraphModule(torch.nn.Module(), graph)
    inductor.inductor_gather_max_pool(gm, [torch.zeros(1, 1, 4, 4)])
    (kwargs,) = compile_calls
    assert inductor.MAX_POOL_BACKWARD not in kwargs["decompositions"]
