import pytest

from conversations import tasks


@pytest.fixture
def woken(monkeypatch):
    """The ids of waiting questions granted a slot, instead of sending their tasks."""
    ids: list[int] = []
    monkeypatch.setattr(tasks, "wake_granted", ids.extend)
    return ids
