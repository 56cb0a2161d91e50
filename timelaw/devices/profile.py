"""What a device is and does (DeviceSpec), and what was fitted on it (DeviceProfile), with provenance.

A DeviceSpec holds hardware facts: published peaks and sizes, or the rates microbenchmarks measured (matmul
sweep, bandwidth per op class, launch cost, all-reduce table). A DeviceProfile is a DeviceSpec plus what the
step-time estimators fitted on it (coefficients, their held-out errors, the raw step timings), so a
calibration can be redone over the same spec, and a System can hold the specs of its devices.

Everything is validated when built or loaded: rates, sizes and times are finite and positive (a NaN or
negative peak is refused, naming the field), efficiencies lie in (0, 1], tables are increasing.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]

__all__ = ["DeviceSpec", "DeviceProfile", "MatmulSweep", "AllReduceTable"]


class MatmulSweep(BaseModel):
    """Achieved matmul rate on a regular grid of (m, n, k), per precision; looked up in log2 space."""

    model_config = ConfigDict(frozen=True)

    sizes: list[int] = Field(description="grid values used for each of m, n and k")
    flops_per_second: dict[str, list] = Field(description="precision -> nested list [m][n][k] of flops/s")
    _interpolators: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _a_positive_regular_grid(self):
        sizes = np.asarray(self.sizes, dtype=np.float64)
        if sizes.size < 2 or np.any(sizes <= 0) or np.any(np.diff(sizes) <= 0):
            raise ValueError(f"matmul.sizes must be at least two positive, increasing sizes; got {self.sizes}")
        for precision, rates in self.flops_per_second.items():
            try:
                table = np.asarray(rates, dtype=np.float64)
            except ValueError:
                table = None
            if table is None or table.shape != (sizes.size,) * 3:
                raise ValueError(f"matmul.flops_per_second[{precision!r}] must be a {sizes.size}x{sizes.size}x"
                                 f"{sizes.size} nested list (one rate per size of m, n and k)")
            if not np.all(np.isfinite(table) & (table > 0)):
                raise ValueError(f"matmul.flops_per_second[{precision!r}] holds a rate that is not a positive "
                                 "finite number")
        return self

    def rate(self, precision: str, m, n, k) -> np.ndarray:
        """Achieved flops/s for (m x k) @ (k x n), interpolated linearly in log2 space, clamped at the edges."""
        from scipy.interpolate import RegularGridInterpolator

        rates, sizes = self.flops_per_second[precision], self.sizes
        axis = np.log2(np.asarray(sizes, dtype=np.float64))
        # Built once per table: the planner looks up millions of shapes. The cache remembers which lists it
        # was built from, because `model_copy(update=...)` copies it along with a new table.
        cached = self._interpolators.get(precision)
        if cached is not None and cached[0] is rates and cached[1] is sizes:
            interp = cached[2]
        else:
            table = np.log2(np.asarray(rates, dtype=np.float64))
            interp = RegularGridInterpolator((axis, axis, axis), table, bounds_error=False, fill_value=None)
            self._interpolators[precision] = (rates, sizes, interp)
        lo, hi = axis[0], axis[-1]
        points = np.stack(np.broadcast_arrays(
            *(np.clip(np.log2(np.maximum(x, 1.0)), lo, hi) for x in (m, n, k))), axis=-1)
        return 2.0 ** interp(points.reshape(-1, 3)).reshape(points.shape[:-1])


class AllReduceTable(BaseModel):
    """Measured all-reduce times: message bytes -> seconds, per number of ranks."""

    model_config = ConfigDict(frozen=True)

    by_group_size: dict[int, tuple[list[float], list[float]]] = Field(
        description="ranks -> (message bytes, seconds), bytes increasing")

    @classmethod
    def from_nccl_tests(cls, path, group_size: int | None = None, in_place: bool = True) -> "AllReduceTable":
        """The table in nccl-tests all_reduce_perf text output: one file, or a list of files (one per rank
        count). The ranks are read from the output's `#  Rank` lines unless `group_size` is given (one file
        only); the in-place times are used unless in_place=False. See timelaw.devices.nccl_tests."""
        import os

        from timelaw.devices.nccl_tests import NcclTestsError, read_all_reduce_perf

        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        if group_size is not None and len(paths) != 1:
            raise ValueError("group_size= applies to one file; each of several files lists its own ranks")
        table = {}
        for one in paths:
            ranks, sizes, seconds = read_all_reduce_perf(one, group_size=group_size, in_place=in_place)
            if ranks in table:
                raise NcclTestsError(f"two files measure {ranks} ranks (the second is {one})")
            table[ranks] = (sizes, seconds)
        return cls(by_group_size=table)

    @model_validator(mode="after")
    def _positive_increasing(self):
        for ranks, (sizes, seconds) in self.by_group_size.items():
            sizes, seconds = np.asarray(sizes, dtype=np.float64), np.asarray(seconds, dtype=np.float64)
            where = f"allreduce.by_group_size[{ranks}]"
            if ranks < 2:
                raise ValueError(f"{where}: an all-reduce needs at least 2 ranks")
            if sizes.size == 0 or sizes.shape != seconds.shape:
                raise ValueError(f"{where}: message bytes and seconds must be two lists of the same length")
            if not (np.all(np.isfinite(sizes) & (sizes > 0)) and np.all(np.isfinite(seconds) & (seconds > 0))):
                raise ValueError(f"{where}: message bytes and seconds must be positive finite numbers")
            if np.any(np.diff(sizes) <= 0):
                raise ValueError(f"{where}: message bytes must be increasing")
        return self

    def seconds(self, group_size: int, message_bytes) -> np.ndarray:
        """Interpolated in log-log space; extrapolated linearly in bytes beyond the largest message."""
        sizes, secs = (np.asarray(a, dtype=np.float64) for a in self.by_group_size[group_size])
        x = np.log(np.maximum(np.asarray(message_bytes, dtype=np.float64), 1.0))
        inside = np.exp(np.interp(x, np.log(sizes), np.log(secs)))
        beyond = secs[-1] * np.asarray(message_bytes) / sizes[-1]
        return np.where(np.asarray(message_bytes) > sizes[-1], beyond, inside)


class DeviceSpec(BaseModel):
    """Hardware facts of one device: what a spec sheet claims or microbenchmarks measured. Nothing fitted."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    name: str
    device_type: Literal["cpu", "cuda", "mps"]
    source: Literal["measured", "spec sheet"] = Field(
        description="'spec sheet': published peak numbers, never measured here; predictions say so")
    description: str = ""
    memory_bytes: PositiveFloat
    peak_flops: dict[str, PositiveFloat] = Field(
        min_length=1, description="precision -> flops/s (dense; a multiply-add is 2)")
    memory_bandwidth: PositiveFloat = Field(description="bytes/s")
    bandwidth_by_class: dict[str, PositiveFloat] = Field(
        default_factory=dict, description="op class -> achieved bytes/s; missing classes use memory_bandwidth")
    kernel_seconds: float = Field(ge=0, description="fixed cost of one kernel launch / eager op")
    matmul: Optional[MatmulSweep] = None
    matmul_efficiency: float = Field(
        default=0.7, gt=0, le=1, description="fraction of peak for large matmuls when there is no sweep")
    interconnect_bandwidth: float = Field(default=0.0, ge=0, description="bytes/s per link for collectives")
    interconnect_latency_seconds: float = Field(default=0.0, ge=0)
    allreduce: Optional[AllReduceTable] = None
    provenance: dict = Field(default_factory=dict)

    @property
    def calibrated(self) -> bool:
        return self.source == "measured"

    @property
    def label(self) -> str:
        """How predictions made with this profile describe it."""
        if self.calibrated:
            return f"{self.name} (measured {self.provenance.get('date', '')[:10]})".replace(" ()", "")
        return f"{self.name} (UNCALIBRATED: spec-sheet numbers, not measured)"

    def peak(self, precision: str) -> float:
        if precision in self.peak_flops:
            return self.peak_flops[precision]
        if precision == "fp16" and "bf16" in self.peak_flops:
            return self.peak_flops["bf16"]
        raise ValueError(f"profile {self.name!r} has no peak for precision {precision!r}; "
                         f"it knows {sorted(self.peak_flops)}")

    def matmul_rate(self, precision: str, m, n, k) -> np.ndarray:
        """Achieved flops/s of a matrix product of this shape."""
        if self.matmul is not None and precision in self.matmul.flops_per_second:
            return self.matmul.rate(precision, m, n, k)
        # No sweep: large products run at matmul_efficiency x peak, small ones lose rate on each short side.
        shortfall = 1.0 + sum(64.0 / np.maximum(x, 1.0) for x in (m, n, k))
        return self.peak(precision) * self.matmul_efficiency / shortfall

    def bandwidth(self, cls: str) -> float:
        return self.bandwidth_by_class.get(cls, self.memory_bandwidth)

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)


class DeviceProfile(DeviceSpec):
    """A DeviceSpec and the step-time estimators fitted on it: everything a step-time prediction needs.

    The JSON is flat (the spec's fields, then the fitted ones), as it always was, so every profile written
    before the split still loads.
    """

    coefficients: dict[str, dict[str, NonNegativeFloat]] = Field(
        default_factory=dict, description="estimator name -> fitted coefficients")
    validation: dict[str, dict] = Field(
        default_factory=dict, description="estimator name -> error on steps not used in the fit")
    measurements: dict = Field(default_factory=dict, description="raw microbenchmark and step timings")

    @property
    def spec(self) -> DeviceSpec:
        """The hardware facts alone, without what was fitted on them."""
        return DeviceSpec.model_construct(**{f: getattr(self, f) for f in DeviceSpec.model_fields})

    @classmethod
    def from_spec(cls, spec: DeviceSpec, coefficients: dict, validation: dict | None = None,
                  measurements: dict | None = None, **updates) -> "DeviceProfile":
        """A profile of `spec` with these fitted coefficients (a recalibration leaves the spec as it was)."""
        return cls.model_validate({**spec.model_dump(), **updates, "coefficients": coefficients,
                                   "validation": validation or {}, "measurements": measurements or {}})
