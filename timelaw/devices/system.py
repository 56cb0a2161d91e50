"""Where a multi-device run happens: a System of nodes of one device, the links inside and between the nodes,
and the collective tables measured on them. Data only: pricing lives in timelaw.timing.network.

A System holds:

- `device`: the DeviceProfile of each device (its peaks, and the step-time coefficients fitted on it);
- `devices_per_node`;
- `intra_node` and `inter_node`: a Link each (bandwidth per device per direction in bytes/s, latency in
  seconds, the fraction of the bandwidth a collective achieves);
- optionally `intra_node_allreduce` (measured inside one node, keyed by ranks) and `inter_node_allreduce`
  (measured across whole nodes, every device of each node taking part, keyed by total ranks): what
  nccl-tests' all_reduce_perf prints, read with AllReduceTable.from_nccl_tests;
- `inter_node_algorithm`: how NCCL crosses the network for large all-reduces: "ring" (every rank in one
  ring, so the node's network links carry 2 (n - 1) / n of the message: bus bandwidth bounded by the
  node's network bandwidth, what NCCL runs on most clusters and always on 3+ nodes of a plain fabric), or
  "hierarchical" (reduce inside the node first, then across nodes: NCCL's NVLS tree on NVSwitch systems
  with NVLink SHARP, H100 and later, which beats the ring by up to 2x on two nodes);
- optionally `nodes`, the cluster's size: a layout that does not use exactly nodes x devices_per_node
  devices is then refused.

Systems are stored as JSON like profiles (the device by profile name, or inline), shipped in
timelaw/data/systems/, and validated on load: a bad file raises SystemFileError naming the file and the
field. A system whose links are published numbers says `source: "spec sheet"`, and every prediction made
with it says so. A bare DeviceProfile is a one-node system: all its devices share the profile's own
interconnect, priced exactly as it always was.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from timelaw.devices.profile import AllReduceTable, DeviceProfile
from timelaw.devices.registry import (ProfileError, cache_dir, load_profile, named_file, read_validated,
                                     resolve_profile)
from timelaw.files import atomic_write_text

__all__ = ["Link", "System", "SystemFileError", "load_system", "read_system", "save_system", "list_systems",
           "systems_dir", "resolve_device_or_system"]

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class SystemFileError(ProfileError):
    """A system file that cannot be read, is not JSON, or holds a value outside its allowed range."""


class Link(BaseModel):
    """One tier of the network, seen from one device."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    bandwidth: PositiveFloat = Field(description="bytes/s each device sends (and receives) at once")
    latency_seconds: float = Field(ge=0, description="fixed cost of one step of a collective on this link")
    efficiency: float = Field(default=1.0, gt=0, le=1,
                              description="fraction of `bandwidth` a collective achieves")
    description: str = ""

    @property
    def effective_bandwidth(self) -> float:
        return self.bandwidth * self.efficiency


class System(BaseModel):
    """Nodes of one device, the intra- and inter-node links, and optional measured all-reduce tables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    source: Literal["measured", "spec sheet"] = Field(
        description="where the link numbers come from; 'spec sheet': published, never measured here")
    description: str = ""
    device: DeviceProfile = Field(description="each device's profile (a profile name in a JSON file)")
    devices_per_node: int = Field(gt=0)
    nodes: Optional[int] = Field(default=None, gt=0, description="the cluster's size; None: as many as needed")
    inter_node_algorithm: Literal["ring", "hierarchical"] = Field(
        default="ring", description="how an all-reduce crosses nodes: one ring of all ranks (NCCL's ring), or "
                                    "reduce inside each node first (NCCL's NVLS tree on NVLink SHARP systems)")
    intra_node: Link
    inter_node: Link
    intra_node_allreduce: Optional[AllReduceTable] = Field(
        default=None, description="all-reduce measured inside one node, keyed by ranks")
    inter_node_allreduce: Optional[AllReduceTable] = Field(
        default=None, description="all-reduce across whole nodes, keyed by total ranks (nodes x devices_per_node)")
    provenance: dict = Field(default_factory=dict)

    @field_validator("device", mode="before")
    @classmethod
    def _profile_by_name(cls, device):
        return load_profile(device) if isinstance(device, str) else device

    @model_validator(mode="after")
    def _tables_fit_the_nodes(self):
        g = self.devices_per_node
        if self.intra_node_allreduce is not None:
            outside = [r for r in self.intra_node_allreduce.by_group_size if r > g]
            if outside:
                raise ValueError(f"intra_node_allreduce: {outside} ranks do not fit in a node of {g} devices")
        if self.inter_node_allreduce is not None:
            bad = [r for r in self.inter_node_allreduce.by_group_size if r % g or r <= g]
            if bad:
                raise ValueError(f"inter_node_allreduce is keyed by the ranks of whole nodes (a multiple of "
                                 f"devices_per_node = {g}, above {g}); got {bad}")
        return self

    @property
    def n_devices(self) -> Optional[int]:
        return None if self.nodes is None else self.nodes * self.devices_per_node

    @property
    def calibrated(self) -> bool:
        """Whether both the device and the network were measured."""
        return self.source == "measured" and self.device.calibrated

    @property
    def label(self) -> str:
        """How predictions made with this system describe it."""
        nodes = "" if self.nodes is None else f"{self.nodes} x "
        network = ("measured network" if self.source == "measured"
                   else "network UNCALIBRATED: spec-sheet link numbers, not measured")
        return f"{self.name} ({nodes}{self.devices_per_node} x {self.device.label} per node; {network})"

    # What the planner asks of "the device": one device's facts, as a profile gives them.
    @property
    def memory_bytes(self) -> float:
        return self.device.memory_bytes

    @property
    def peak_flops(self) -> dict:
        return self.device.peak_flops

    @property
    def validation(self) -> dict:
        return self.device.validation

    def peak(self, precision: str) -> float:
        return self.device.peak(precision)

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)


def systems_dir() -> Path:
    """The shipped systems."""
    return Path(__file__).resolve().parent.parent / "data" / "systems"


def _cached_systems_dir() -> Path:
    return cache_dir().parent / "systems"


def list_systems() -> dict[str, Path]:
    """System name -> file; a system saved here (the cache's systems/) shadows a shipped one of the same name."""
    found = {}
    for directory in (systems_dir(), _cached_systems_dir()):
        if directory.is_dir():
            found.update({p.stem: p for p in sorted(directory.glob("*.json"))})
    return found


def save_system(system: System, path: str | os.PathLike | None = None) -> Path:
    """Write the system as JSON (device inline) atomically, to the cache's systems/ by default."""
    path = Path(path) if path is not None else _cached_systems_dir() / f"{system.name}.json"
    return atomic_write_text(path, system.to_json())


def read_system(path: str | os.PathLike) -> System:
    """The system in a JSON file, validated; a bad file raises SystemFileError naming the file and the field."""
    return read_validated(path, System, "system", SystemFileError)


def load_system(name_or_path: str | os.PathLike) -> System:
    """A system by name (saved here first, then shipped) or by path to its JSON file."""
    return read_system(named_file(name_or_path, list_systems, "system"))


def _is_system_file(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "devices_per_node" in data


def resolve_device_or_system(profile) -> tuple[DeviceProfile, Optional[System]]:
    """(the device's profile, the System or None) from a System, a DeviceProfile, a system or profile name
    or path, or None (this machine's default profile, a one-node system)."""
    if isinstance(profile, System):
        return profile.device, profile
    if isinstance(profile, (str, os.PathLike)) and not isinstance(profile, DeviceProfile):
        path = Path(profile)
        if (path.is_file() and _is_system_file(path)) or (not path.is_file() and str(profile) in list_systems()):
            system = load_system(profile)
            return system.device, system
    return resolve_profile(profile), None
