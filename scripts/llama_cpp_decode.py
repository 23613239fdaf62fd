"""llama.cpp's decode steps of SmolLM2-135M in fp32 at B rows, for side-by-side figures with align_lab's
rollout (`python -m benchmarks run floor`): issue 72 item 2 asks what reaches the rollout's bandwidth floor.

llama.cpp (llama-cpp-python) is no dependency of align_lab: it is measured in a venv of its own, on the
policy's own fp32 weights converted to GGUF with llama.cpp's converter (from the package's sdist):

    python3 -m venv /tmp/lcpvenv
    /tmp/lcpvenv/bin/pip install llama-cpp-python==0.3.36 torch==2.13.0 sentencepiece safetensors \
        transformers==5.24.0                                  # builds llama.cpp (about 10 min on 2 cores)
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp && tar xzf \
        /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
    python -m benchmarks run floor --cache-dir /tmp/fcache    # writes SmolLM2's fp32 checkpoint there
    cd /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp && PYTHONPATH=gguf-py /tmp/lcpvenv/bin/python \
        ./convert_hf_to_gguf.py /tmp/fcache/gguf/<digest>/ --outtype f32 --outfile /tmp/lcp/smollm2-f32.gguf
    /tmp/lcpvenv/bin/python scripts/llama_cpp_decode.py /tmp/lcp/smollm2-f32.gguf 1 2 4 8 16

(`--outtype bf16` or `q8_0` for llama.cpp's 16- and 8-bit weights; the converter needs sentencepiece.)

Each row count: one prefill of a 63-token prompt per row (a sequence each), then 64 decode steps of one
token per row with every row's logits, 2 threads; it prints ms per decode step and the weights' read rate
(the GGUF file's bytes a step: 538 MB in f32)."""

from __future__ import annotations

import os
import sys
import time

STEPS, PROMPT = 64, 63


def decode_ms(path: str, rows: int, threads: int = 2) -> float:
    """ms per decode step of `rows` sequences after their prefill."""
    import llama_cpp as L

    L.llama_backend_init()
    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    params = L.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 2048, 1024, 1024, rows
    params.n_threads = params.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, params)
    batch = L.llama_batch_init(1024, 0, rows)

    def decode(entries: list[tuple[int, int, int, int]]) -> None:
        batch.n_tokens = len(entries)
        for i, (token, position, sequence, logits) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, position, 1
            batch.seq_id[i][0], batch.logits[i] = sequence, logits
        if L.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    decode([(100 + p, p, s, int(p == PROMPT - 1)) for s in range(rows) for p in range(PROMPT)])
    start = time.perf_counter()
    for step in range(STEPS):
        decode([(200 + step, PROMPT + step, s, 1) for s in range(rows)])
    return (time.perf_counter() - start) / STEPS * 1e3


if __name__ == "__main__":
    gguf, counts = sys.argv[1], [int(n) for n in sys.argv[2:]] or [8]
    for rows in counts:
        ms = decode_ms(gguf, rows)
        print(
            f"llama.cpp {os.path.basename(gguf)}, {rows} rows, 2 threads: {ms:.1f} ms a decode step, "
            f"weights at {os.path.getsize(gguf) / ms / 1e6:.1f} GB/s"
        )
