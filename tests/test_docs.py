"""docs/ stays true to the code: the config reference is the schema's, and nothing points outside the repository."""
import re
from pathlib import Path

from core.config.reference import reference
from jobs import config as config_job

ROOT = Path(__file__).resolve().parent.parent


def test_the_config_reference_is_current():
    written = (ROOT / "docs" / "config_reference.md").read_text()
    assert written == reference(), "docs/config_reference.md is out of date: python -m jobs.config --reference --out docs/config_reference.md"


def test_every_key_of_the_quickstart_is_in_the_reference(capsys):
    assert config_job.main([]) == 0
    printed = capsys.readouterr().out
    text = reference()
    for section, key in re.findall(r"^(\w+):\n  (\w+):", printed, re.M):
        assert f"`{section}.{key}`" in text or f"`{section}.{key}." in text


def test_a_bad_key_is_refused_by_jobs_config(capsys):
    assert config_job.main(["configs/quickstart.yaml", "train.epoch=3"]) == 2
    assert "unknown key 'train.epoch'" in capsys.readouterr().err


def test_no_file_points_outside_the_repository():
    texts = [path for pattern in ("*.md", "requirements*.txt") for path in ROOT.glob(pattern)] + list((ROOT / "docs").glob("*.md"))
    outside = [str(path.relative_to(ROOT)) for path in texts if re.search(r"\.\./shared|DESIGN\.md", path.read_text())]
    assert not outside, f"these point outside the repository: {outside}"
