"""``python -m lifelong.models.llama_server --model FILE.gguf --port N``: llama-cpp-python's
OpenAI-compatible server, started with the same loading rules as :class:`~lifelong.models.LlamaCpp`
(see :func:`~lifelong.models.llama_cpp.without_amx`). Needs ``pip install "llama-cpp-python[server]"``.
"""

from __future__ import annotations

from lifelong.models.llama_cpp import without_amx


def main() -> None:
    try:
        from llama_cpp.server.__main__ import main as serve
    except ImportError:
        raise SystemExit('the server extra is missing: pip install "llama-cpp-python[server]"') from None
    with without_amx():  # the server loads its model inside, so the patch spans its whole life
        serve()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
