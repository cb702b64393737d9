"""Every config example works where the README runs it: examples/ and the README's own.

The README applies them after `bin/run` (OLLAMA_URL on localhost) and inside docker
compose (OLLAMA_URL=http://ollama:11434). An example must not name a model endpoint of
its own: on loopback it would be the web container itself, and outside OLLAMA_URL's host
the allow-list refuses it.
"""

import re
import tomllib
from pathlib import Path

import pytest

from channels_im.models import Bot
from channels_im.platforms import PLATFORMS
from tenants.config import ConfigError, apply_config, apply_file, load
from tenants.models import Tenant

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_FILES = sorted((ROOT / "examples").iterdir())
README_BLOCKS = [
    block
    for block in re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    if "[[tenants]]" in block
]
WHERE_THE_README_RUNS_THEM = ["http://localhost:11434", "http://ollama:11434"]

pytestmark = pytest.mark.django_db


@pytest.fixture(params=WHERE_THE_README_RUNS_THEM)
def ollama_url(request, settings):
    settings.OLLAMA_URL = request.param
    settings.MODEL_ENDPOINT_ALLOWED_HOSTS = []  # the default
    return request.param


def check_applied(ollama_url: str) -> None:
    for tenant in Tenant.objects.all():
        assert tenant.endpoint == ollama_url, tenant.slug
    assert Bot.objects.exists()


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_each_example_file_applies_and_uses_ollama_url(ollama_url, path):
    assert {change.action for change in apply_file(path)} == {"created"}
    check_applied(ollama_url)
    assert {change.action for change in apply_file(path)} == {"unchanged"}


def test_the_example_files_say_the_same_and_show_every_platform():
    trees = [load(path) for path in EXAMPLE_FILES]
    assert len(trees) >= 2 and all(tree == trees[0] for tree in trees)
    platforms = {bot["platform"] for tenant in trees[0]["tenants"] for bot in tenant["bots"]}
    assert platforms == set(PLATFORMS)


@pytest.mark.parametrize(
    "block", README_BLOCKS, ids=[f"readme-{n}" for n in range(len(README_BLOCKS))]
)
def test_each_readme_example_applies_and_uses_ollama_url(ollama_url, block):
    try:
        apply_config(tomllib.loads(block))
    except ConfigError as error:
        pytest.fail(f"the README's example fails: {error}")
    check_applied(ollama_url)


def test_the_readme_has_examples_to_check():
    assert len(README_BLOCKS) >= 4
