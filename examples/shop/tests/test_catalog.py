"""Unit tests the example's pipeline runs: the catalog service answers as documented."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "catalog" / "app.py"


@pytest.fixture
def catalog() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(APP)], env={**os.environ, "PORT": str(port)}, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.loads(r.read())


def test_products_are_listed(catalog: str) -> None:
    products = get(catalog + "/products")["products"]
    assert {"id", "name", "price_cents", "stock"} <= set(products[0])


def test_one_product_by_id(catalog: str) -> None:
    first = get(catalog + "/products")["products"][0]
    assert get(f"{catalog}/products/{first['id']}")["id"] == first["id"]


def test_version_names_the_service(catalog: str) -> None:
    assert get(catalog + "/version")["service"] == "catalog"
