"""Reading /metrics as Prometheus does: the text format, parsed by prometheus-client."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

SampleKey = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Scrape:
    """One scrape's samples by name and labels; `text` as served."""

    text: str
    samples: dict[SampleKey, float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return cls(text, samples)

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for one not exported yet (a counter never counted)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def since(self, earlier: Scrape) -> Scrape:
        """What changed from `earlier` to this scrape (counters only grow)."""
        changed = {
            key: value - earlier.samples.get(key, 0.0)
            for key, value in self.samples.items()
            if value != earlier.samples.get(key, 0.0)
        }
        return Scrape(self.text, changed)

    def label_values(self, label: str) -> set[str]:
        """Every value `label` has in any sample."""
        return {value for _, labels in self.samples for name, value in labels if name == label}


def scrape(client, token: str = "") -> Scrape:
    """GET /metrics through the Django test client; fails unless it answers 200."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return Scrape.parse(response.content.decode())
