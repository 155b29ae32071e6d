"""scripts/check-api-coverage: the rule that ties the README's compatibility table to the suites.

Synthetic README tables and broker reports; no broker is started.
"""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check-api-coverage"

README = """# Shoal

## Compatibility

| API | Key | Versions |
|---|---|---|
| Produce | 0 | 3–12 |
| ApiVersions | 18 | 0–4 |
| OffsetDelete | 47 | 0 |

## Next section

| Other | 1 | 2 |
"""

REGISTRY = "advertised 0 Produce 3 12\nadvertised 18 ApiVersions 0 4\nadvertised 47 OffsetDelete 0 0\n"


def run(tmp_path, readme, *reports):
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    files = []
    for i, report in enumerate(reports):
        path = tmp_path / f"coverage-{i}.txt"
        path.write_text(report, encoding="utf-8")
        files.append(str(path))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--readme", str(tmp_path / "README.md"), *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def test_passes_when_the_table_is_the_registry_and_every_maximum_was_exercised(tmp_path):
    first = REGISTRY + "exercised 0 12 5\nexercised 18 3 1\n"
    # A second broker in the same file, and a report in another file.
    second = REGISTRY + "exercised 18 4 2\nexercised 47 0 1\n"
    code, out = run(tmp_path, README, first + second, REGISTRY)
    assert code == 0, out
    assert "3 broker report(s)" in out
    assert "v3 (1), v4 (2)" in out


def test_fails_when_a_claimed_maximum_was_never_exercised(tmp_path):
    code, out = run(tmp_path, README, REGISTRY + "exercised 0 11 5\nexercised 18 4 1\nexercised 47 0 1\n")
    assert code == 1, out
    assert "Produce (key 0) claims versions 3-12, but no suite exercised v12" in out


def test_fails_when_the_table_and_the_registry_differ(tmp_path):
    exercised = "exercised 0 12 1\nexercised 18 4 1\nexercised 47 0 1\n"
    wider = README.replace("| Produce | 0 | 3–12 |", "| Produce | 0 | 3–13 |")
    code, out = run(tmp_path, wider, REGISTRY + exercised)
    assert code == 1 and "differs from the registry" in out, out
    missing = README.replace("| OffsetDelete | 47 | 0 |\n", "")
    code, out = run(tmp_path, missing, REGISTRY + exercised)
    assert code == 1 and "missing from the README table" in out, out
    extra = README.replace("| OffsetDelete | 47 | 0 |\n", "| OffsetDelete | 47 | 0 |\n| ElectLeaders | 43 | 0–2 |\n")
    code, out = run(tmp_path, extra, REGISTRY + exercised)
    assert code == 1 and "which the broker does not advertise" in out, out


def test_fails_when_brokers_advertise_different_registries(tmp_path):
    exercised = "exercised 0 12 1\nexercised 18 4 1\nexercised 47 0 1\n"
    other = REGISTRY.replace("advertised 18 ApiVersions 0 4", "advertised 18 ApiVersions 0 3")
    code, out = run(tmp_path, README, REGISTRY + exercised + other + exercised)
    assert code == 1 and "different registries" in out, out


def test_unusable_input_is_its_own_exit_code(tmp_path):
    code, out = run(tmp_path, README, "")
    assert code == 2 and "no broker report" in out, out
    code, out = run(tmp_path, README, "garbage line\n")
    assert code == 2 and "unexpected line" in out, out
    code, out = run(tmp_path, "# no table\n", REGISTRY)
    assert code == 2 and "no compatibility table" in out, out
