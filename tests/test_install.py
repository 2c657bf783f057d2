"""`pip install .` gives a working service: the wheel holds every file the service reads at run
time, and in a fresh virtual environment, from a directory that is not the repository, `kco`
lists the commands `flask --app wsgi kco` lists and the installed app answers requests from the
installed copy, not from the checkout.

Offline and in seconds: the wheel is built from a copy of the tree with this environment's
setuptools (no build isolation, so nothing is fetched; requirements-dev.txt pins a setuptools
that builds wheels on its own), installed with --no-deps into a new venv, and the new venv sees
this environment's packages through a .pth file in place of downloading requirements.txt.
Nothing is written into the repository: setuptools builds in the copy.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Not part of what is built: the environment, git, caches, outputs of earlier builds and runs.
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "instance", "__pycache__", "*.pyc", ".pytest_cache",
                                    ".hypothesis", ".mypy_cache", ".ruff_cache", "build", "dist", "*.egg-info")
TOP_LEVEL_MODULES = ("wsgi.py", "config.py", "settings.py", "sandbox_wsgi.py")
ENV = {"PATH": "/usr/bin:/bin"}  # nothing of this process's settings leaks into the installed copy


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The wheel, built from a copy of this tree."""
    import setuptools

    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    assert (major, minor) >= (70, 1), (
        f"setuptools {setuptools.__version__} cannot build a wheel without the `wheel` package: "
        "`.venv/bin/python -m pip install -r requirements-dev.txt`")
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_COPIED, symlinks=True)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--wheel-dir", str(work / "dist"),
         str(source)], cwd=work, env={**ENV, "HOME": str(work)})
    (wheel,) = (work / "dist").glob("kco_sync-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(built) -> Path:
    """A fresh venv with the wheel installed; this environment's site-packages stand in for the
    dependencies (appended to sys.path, after the venv's own, so the installed copy wins)."""
    venv = built.parent.parent / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=built.parent, env=ENV)
    python = venv / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               cwd=venv, env=ENV).stdout.strip()
    (Path(site) / "kco-sync-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", "--quiet", str(built)], cwd=venv, env={**ENV, "HOME": str(venv)})
    return venv


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working directory with no wsgi.py, no .env and no repository above it."""
    place = tmp_path / "elsewhere"
    place.mkdir()
    return place


def shipped_files() -> set[str]:
    """Every file of the service's packages, as the wheel names them."""
    found = set()
    for package in ("callbacks", "sandbox"):
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.add(path.relative_to(ROOT).as_posix())
    return found


def test_the_wheel_holds_every_file_the_service_reads_and_nothing_else(built):
    names = set(zipfile.ZipFile(built).namelist())
    files = shipped_files()
    assert files - names == set(), "add their patterns to [tool.setuptools.package-data] in pyproject.toml"
    # The kinds of file the service reads from its own folder, each there (the check above would
    # pass on an empty tree).
    for expected in ("callbacks/demoshop/templates/shop/base.html", "callbacks/static/kco-sync.js",
                     "callbacks/translations/sv/LC_MESSAGES/messages.mo", "callbacks/rules/shops/example.toml",
                     "callbacks/store/migrations/env.py", "callbacks/store/migrations/script.py.mako",
                     "sandbox/templates/sandbox/frame.html", "sandbox/static/klarna-checkout.js"):
        assert expected in names
    assert len([n for n in names if n.startswith("callbacks/store/migrations/versions/") and n.endswith(".py")]) >= 5
    assert set(TOP_LEVEL_MODULES) <= names
    outside = sorted(n for n in names if n.split("/")[0] not in {"callbacks", "sandbox", *TOP_LEVEL_MODULES}
                     and ".dist-info/" not in n)
    assert outside == [], "tests, docs and scripts stay in the repository"
    metadata = zipfile.ZipFile(built).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    pinned = [line.strip() for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.startswith("#")]
    assert [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
            if line.startswith("Requires-Dist: ")] == pinned, "the dependencies are requirements.txt's pins"


def commands(help_text: str) -> list[str]:
    """The `Commands:` section of a click help page, as printed."""
    lines = help_text.splitlines()
    return lines[lines.index("Commands:") + 1:]


def test_kco_lists_the_commands_flask_kco_lists(venv, elsewhere, tmp_path):
    env = {**ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}"}
    installed = run([str(venv / "bin" / "kco"), "--help"], cwd=elsewhere, env=env)
    checkout = run([sys.executable, "-m", "flask", "--app", "wsgi", "kco", "--help"], cwd=ROOT, env=env)
    assert installed.stdout.startswith("Usage: kco [OPTIONS] COMMAND [ARGS]...")
    listed = commands(installed.stdout)
    assert listed == commands(checkout.stdout)
    assert {"migrate", "demo", "replay", "settings", "catalog", "deliver"} <= {line.split()[0] for line in listed}
    secret = run([str(venv / "bin" / "kco"), "secret"], cwd=elsewhere, env=env).stdout.strip()
    assert len(secret) == 43


def test_kco_refuses_a_bad_setting_in_one_line(venv, elsewhere):
    result = subprocess.run([str(venv / "bin" / "kco"), "--help"], cwd=elsewhere, capture_output=True, text=True,
                            timeout=60, env={**ENV, "KCO_ENV": "staging"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: KCO_ENV must be one of development, production (or unset: development), not 'staging'"]


# Runs in the installed copy's interpreter: prints what it found as JSON.
SERVE = """
import json, sys
import callbacks, config, settings, wsgi, sandbox, sandbox_wsgi
from callbacks import create_app
from callbacks.rules.texts import Text
from callbacks.web import i18n

found = {"files": {m.__name__: m.__file__ for m in (callbacks, config, settings, wsgi, sandbox, sandbox_wsgi)},
         "instance": str(config.INSTANCE), "prefix": sys.prefix}
app = create_app()
client = app.test_client()
found["healthz"] = [client.get("/healthz").status_code, client.get("/healthz").get_json()]
found["shop"] = client.get("/").status_code
found["script"] = [client.get("/static/kco-sync.js").status_code, client.get("/static/kco-sync.js").content_length]
with app.app_context():
    text = Text("billing_country_missing")
    found["texts"] = [text.english(), i18n.render(text, "sv-SE", {})]
frame = sandbox_wsgi.app.test_client().get("/sandbox/static/frame.js")
found["sandbox"] = frame.status_code
print(json.dumps(found))
"""


def test_the_installed_app_serves_requests_from_the_installed_copy(venv, elsewhere, tmp_path):
    env = {**ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}"}
    found = json.loads(run([str(venv / "bin" / "python"), "-c", SERVE], cwd=elsewhere, env=env).stdout)
    for name, file in found["files"].items():
        assert file.startswith(found["prefix"]), f"{name} was imported from {file}, not the installed copy"
        assert not file.startswith(str(ROOT)), name
    # No project folder: the default SQLite file and rate-limit counters live in the venv.
    assert found["instance"] == str(Path(found["prefix"]) / "var" / "kco-sync-instance")
    assert found["healthz"] == [200, {"status": "ok"}]  # the migrations ran, from the installed copy
    assert found["shop"] == 200  # the demo shop's templates
    assert found["script"][0] == 200 and found["script"][1] > 0  # the static files
    english, swedish = found["texts"]
    assert swedish != english and "faktureringsland" in swedish.lower()  # the compiled catalogs
    assert found["sandbox"] == 200
