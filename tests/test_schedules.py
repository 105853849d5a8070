"""Learning-rate schedules: values at chosen steps, name lookup, bad settings."""

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_trainer import schedules


def _at(schedule, step):
    return float(schedule(jnp.asarray(step, jnp.int32)))


def test_constant():
    s = schedules.create_learning_rate_schedule("constant", base_learning_rate=1e-3)
    assert _at(s, 0) == pytest.approx(1e-3)
    assert _at(s, 10**6) == pytest.approx(1e-3)


def test_rsqrt_matches_t5x_formula():
    s = schedules.create_learning_rate_schedule("rsqrt", base_learning_rate=1.0, warmup_steps=10_000)
    assert _at(s, 0) == pytest.approx(0.01)  # 1 / sqrt(10000), flat during warmup
    assert _at(s, 5_000) == pytest.approx(0.01)
    assert _at(s, 40_000) == pytest.approx(1 / 200)
    s0 = schedules.create_learning_rate_schedule("rsqrt", base_learning_rate=1.0, warmup_steps=0)
    assert np.isfinite(_at(s0, 0))  # no division by zero at step 0


def test_linear_warmup_and_decay():
    s = schedules.create_learning_rate_schedule(
        "linear", base_learning_rate=1.0, warmup_steps=10, decay_steps=110, end_learning_rate=0.1
    )
    assert _at(s, 0) == pytest.approx(0.0)
    assert _at(s, 5) == pytest.approx(0.5)
    assert _at(s, 10) == pytest.approx(1.0)
    assert _at(s, 60) == pytest.approx(0.55)
    assert _at(s, 110) == pytest.approx(0.1)
    assert _at(s, 500) == pytest.approx(0.1)


def test_cosine_warmup_and_decay():
    s = schedules.create_learning_rate_schedule(
        "cosine", base_learning_rate=2.0, warmup_steps=4, decay_steps=104
    )
    assert _at(s, 2) == pytest.approx(1.0)
    assert _at(s, 4) == pytest.approx(2.0)
    assert _at(s, 54) == pytest.approx(1.0, abs=1e-6)  # half-way: half of base
    assert _at(s, 104) == pytest.approx(0.0, abs=1e-6)
    assert _at(s, 1000) == pytest.approx(0.0, abs=1e-6)


def test_schedules_trace_under_jit():
    s = schedules.create_learning_rate_schedule("cosine", 1.0, warmup_steps=2, decay_steps=10)
    out = jax.jit(jax.vmap(s))(jnp.arange(12))
    assert out.shape == (12,) and out.dtype == jnp.float32


def test_unknown_name_lists_valid_names():
    with pytest.raises(schedules.ScheduleError, match="unknown learning-rate schedule 'rsqrt_decay'.*constant, rsqrt, linear, cosine"):
        schedules.create_learning_rate_schedule("rsqrt_decay")


def test_decay_needs_consistent_steps():
    with pytest.raises(schedules.ScheduleError, match="decay_steps"):
        schedules.create_learning_rate_schedule("linear", warmup_steps=10)
    with pytest.raises(schedules.ScheduleError, match="warmup_steps <= decay_steps"):
        schedules.create_learning_rate_schedule("cosine", warmup_steps=10, decay_steps=5)


def test_gin_binding_by_name():
    with gin.unlock_config():
        gin.parse_config(
            "create_learning_rate_schedule.name = 'rsqrt'\n"
            "create_learning_rate_schedule.base_learning_rate = 1.0\n"
            "create_learning_rate_schedule.warmup_steps = 100\n"
        )
    try:
        s = schedules.create_learning_rate_schedule()
        assert _at(s, 400) == pytest.approx(0.05)
    finally:
        gin.clear_config()
