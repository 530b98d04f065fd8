"""What a serving process uses, read from its Prometheus text (`GET /metrics`): the
process's resident memory and CPU seconds, and what loading each served version cost
(`scorehouse_model_load_seconds`, `scorehouse_model_load_memory_bytes`, measured by the
scorer cache). The monitoring report shows them beside the log's figures.

    text = urllib.request.urlopen("http://host:8080/metrics").read().decode()
    resources = parse_resources(text, source="http://host:8080/metrics")
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class ModelLoad:
    """What loading one served version took: seconds, resident memory grown (bytes)."""

    model: str
    version: str
    seconds: float
    memory_bytes: float


@dataclass(frozen=True)
class Resources:
    """A serving process's resources at the time `source` was read (None: not exported,
    e.g. `process_*` off a non-Linux host)."""

    source: str
    resident_memory_bytes: float | None
    cpu_seconds: float | None
    loads: tuple[ModelLoad, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """Plain JSON data (for --json)."""
        return {"source": self.source, "resident_memory_bytes": self.resident_memory_bytes,
                "cpu_seconds": self.cpu_seconds,
                "loads": [vars(load) for load in self.loads]}


def parse_resources(text: str, source: str = "") -> Resources:
    """The resources in Prometheus text exposition `text` (a scorehouse server's /metrics).

    Raises:
        UsageError: `text` is not Prometheus' text format.
    """
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    loads: dict[tuple[str, str], dict[str, float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name in ("process_resident_memory_bytes", "process_cpu_seconds_total"):
                    values[s.name] = s.value
                elif s.name in ("scorehouse_model_load_seconds",
                                "scorehouse_model_load_memory_bytes"):
                    key = (s.labels.get("model", ""), s.labels.get("version", ""))
                    loads.setdefault(key, {})[s.name] = s.value
    except ValueError as e:
        raise UsageError(f"{source or 'metrics'}: not Prometheus' text format ({e})") from None
    return Resources(source, values.get("process_resident_memory_bytes"),
                     values.get("process_cpu_seconds_total"),
                     tuple(ModelLoad(m, v, f.get("scorehouse_model_load_seconds", 0.0),
                                     f.get("scorehouse_model_load_memory_bytes", 0.0))
                           for (m, v), f in sorted(loads.items())))


__all__ = ["ModelLoad", "Resources", "parse_resources"]
