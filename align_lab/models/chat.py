"""Chat-template rendering: a prompt as the user turn, an observation as the user turn after the policy's."""

from __future__ import annotations


def chat_prompt(tokenizer, prompt: str, system_prompt: str | None) -> str:
    """The prompt as the user turn of the tokenizer's chat template, ending in the assistant header;
    a leading BOS is dropped when the tokenizer adds its own (no double BOS)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": prompt})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token
    adds_bos = bos is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    return rendered[len(bos) :] if adds_bos and rendered.startswith(bos) else rendered


MARKER = "ALIGNLABASSISTANTTURN"  # the assistant turn's text when an observation is rendered: found, then cut


def chat_observation(tokenizer, text: str) -> str:
    """An observation as the user turn that follows an assistant turn, ending in the assistant header
    (docs/environments.md, "How a conversation becomes training data"): [user "P", assistant "A", user
    text] rendered with add_generation_prompt, the part after "A" and the template's end of turn (the EOS
    that ended the policy's turn, sampled or appended, is not repeated). "A" is a marker word, so a header
    that spells "A" does not confuse it."""
    turns = [
        {"role": "user", "content": "P"},
        {"role": "assistant", "content": MARKER},
        {"role": "user", "content": text},
    ]
    rendered = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    if rendered.count(MARKER) != 1:
        raise ValueError("model.chat_template: the template does not render the assistant's turn once")
    rest = rendered.split(MARKER, 1)[1]
    eos = tokenizer.eos_token or ""
    return rest[len(eos) :] if eos and rest.startswith(eos) else rest
