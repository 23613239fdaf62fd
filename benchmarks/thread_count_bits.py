"""Does torch's thread count change the bits of training? Trains a tiny Llama for 3 AdamW steps with
N threads and prints a hash of the weights; equal hashes for 1 and 2 threads = bit-identical.

Usage: for n in 1 2; do .venv/bin/python benchmarks/thread_count_bits.py $n 576; done
"""

import hashlib
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

threads, hidden = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
config = LlamaConfig(
    vocab_size=64,
    hidden_size=hidden,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    intermediate_size=2 * hidden,
    max_position_embeddings=64,
)
model = LlamaForCausalLM(config)
ids = torch.randint(0, 64, (64, 20))  # (B, T)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
for _ in range(3):
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
weights = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
digest = hashlib.sha256(weights).hexdigest()[:16]
print(f"threads {threads} hidden {hidden}: weights {digest} loss {loss.item():.6f}")
