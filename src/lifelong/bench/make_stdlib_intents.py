"""Write a second intent data set, in the BANKING77 layout, from the running Python's own documentation.

Each text is the first sentence of the docstring of a public function, method or class of a standard-
library module; its category is the module ("which module does what I ask for?" — the routing question
of a developer assistant). Nothing here is written by us: the texts are CPython's docstrings, so the set
is real, present on every machine, and was never looked at while the intent agent was built. Modules
with fewer than ``--min-per-class`` docstrings are left out; each category's texts are dealt into
train/test 4:1 in a fixed order.

    python -m lifelong.bench.make_stdlib_intents --out runs/stdlib-intents
    lifelong bench intent-stream --data runs/stdlib-intents --out runs/bench-stdlib --seeds 3 --steps 1000
"""

from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import json
import re
import sys
import warnings
from pathlib import Path

MODULES = [
    "argparse",
    "asyncio",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "contextlib",
    "copy",
    "csv",
    "datetime",
    "decimal",
    "difflib",
    "email",
    "fractions",
    "ftplib",
    "functools",
    "gettext",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http.client",
    "imaplib",
    "inspect",
    "ipaddress",
    "itertools",
    "json",
    "logging",
    "mailbox",
    "math",
    "mimetypes",
    "multiprocessing",
    "os",
    "pathlib",
    "pickle",
    "platform",
    "plistlib",
    "poplib",
    "pprint",
    "queue",
    "random",
    "re",
    "secrets",
    "selectors",
    "shlex",
    "shutil",
    "smtplib",
    "socket",
    "sqlite3",
    "ssl",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "time",
    "timeit",
    "tkinter",
    "tokenize",
    "traceback",
    "turtle",
    "typing",
    "unittest",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "wave",
    "weakref",
    "xml.dom.minidom",
    "xml.etree.ElementTree",
    "zipfile",
    "zlib",
]

_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)", re.S)


def first_sentence(doc: str) -> str | None:
    text = " ".join(doc.strip().split("\n\n")[0].split())
    match = _SENTENCE.match(text)
    sentence = (match.group(1) if match else text).strip()
    if len(sentence) < 15 or len(sentence) > 200 or "(" in sentence[:12]:  # skip signatures
        return None
    return sentence


def texts_of(name: str) -> list[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(name)
    except Exception:  # a module this build lacks (e.g. tkinter without Tk): left out
        return []
    found: list[str] = []
    for attr, obj in vars(module).items():
        home = getattr(obj, "__module__", None) or name
        if attr.startswith("_") or home.split(".")[0] != name.split(".")[0]:
            continue
        members = [obj]
        if inspect.isclass(obj):
            members += [m for k, m in vars(obj).items() if not k.startswith("_") and callable(m)]
        for member in members:
            doc = inspect.getdoc(member) if callable(member) else None
            sentence = first_sentence(doc) if doc else None
            if sentence and sentence not in found:
                found.append(sentence)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--min-per-class", type=int, default=12)
    args = parser.parse_args(argv)
    rows: dict[str, list[str]] = {}
    seen: set[str] = set()
    for name in MODULES:
        texts = [t for t in texts_of(name) if t not in seen]
        if len(texts) >= args.min_per_class:
            rows[name] = texts
            seen.update(texts)
    args.out.mkdir(parents=True, exist_ok=True)
    split: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for category, texts in rows.items():
        for n, text in enumerate(texts):
            split["test" if n % 5 == 4 else "train"].append((text, category))
    for name, pairs in split.items():
        with (args.out / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "category"])
            writer.writerows(pairs)
    (args.out / "categories.json").write_text(json.dumps(sorted(rows), indent=1), encoding="utf-8")
    print(
        f"{len(rows)} categories, {len(split['train'])} train / {len(split['test'])} test texts "
        f"(Python {sys.version.split()[0]}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
