"""The Kubernetes example's secrets: kustomize builds a Secret of empty values without a word
(and the hub's pods then refuse to start), so ``deploy/kubernetes/check-secrets.sh`` refuses
them before ``kubectl apply -k``. Run as an operator runs it, in a process of its own."""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from core.models import Provider

KUSTOMIZE_DIR = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
CHECK = KUSTOMIZE_DIR / "check-secrets.sh"
EXAMPLE = KUSTOMIZE_DIR / "secrets.env.example"
NAMES = [f"HUB_SECRET_{p.value.upper()}" for p in Provider]


def check(env_file: Path | None) -> subprocess.CompletedProcess[str]:
    args = [str(CHECK)] if env_file is None else [str(CHECK), str(env_file)]
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def filled(text: str) -> str:
    """The example with a fresh secret after each ``=``, as the operator fills it in."""
    return re.sub(
        r"^(HUB_SECRET_\w+)=$", lambda m: m[1] + "=" + secrets.token_urlsafe(16), text, flags=re.M
    )


def test_it_checks_the_file_the_secret_generator_reads() -> None:
    kustomization = yaml.safe_load((KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    [generator] = kustomization["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]
    script = CHECK.read_text()
    [listed] = re.findall(r"for provider in ([A-Z ]+); do", script)
    assert listed.split() == [p.value.upper() for p in Provider]


def test_the_example_as_it_is_is_refused_naming_every_empty_secret(tmp_path) -> None:
    copy = tmp_path / "secrets.env"
    copy.write_text(EXAMPLE.read_text())  # cp secrets.env.example secrets.env, and nothing more
    proc = check(copy)
    assert proc.returncode == 1
    for name in NAMES:
        assert f"{name} is empty" in proc.stderr
    assert "MUST BE FILLED IN" in EXAMPLE.read_text()


def test_the_example_filled_in_passes(tmp_path) -> None:
    copy = tmp_path / "secrets.env"
    copy.write_text(filled(EXAMPLE.read_text()))
    proc = check(copy)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda t: re.sub(r"^HUB_SECRET_DMC=.*$", "HUB_SECRET_DMC= , ", t, flags=re.M),
            "HUB_SECRET_DMC is empty: put its value after the '='",
        ),
        (
            lambda t: re.sub(r"^HUB_SECRET_ECALL=.*\n", "", t, flags=re.M),
            "HUB_SECRET_ECALL is missing",
        ),
        (
            lambda t: t + "HUB_RABBITMQ_URL=\n",
            "HUB_RABBITMQ_URL is empty: put its value after the '='",
        ),
    ],
)
def test_one_value_missing_or_empty_is_named(tmp_path, change, said) -> None:
    copy = tmp_path / "secrets.env"
    copy.write_text(change(filled(EXAMPLE.read_text())))
    proc = check(copy)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"{copy}: {said}"]


def test_no_secrets_env_at_all_says_how_to_make_it(tmp_path) -> None:
    proc = check(tmp_path / "secrets.env")
    assert proc.returncode == 1
    assert "cp secrets.env.example secrets.env" in proc.stderr
