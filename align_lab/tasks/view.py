"""A task as a pretrained policy sees it: prompts rendered in the model's chat template, the model's
token limits. Rewards with their own tokenizer get the raw prompt back with `raw()`."""

from __future__ import annotations

import dataclasses


def plain_observation(text: str) -> str:
    """An observation as a model without a chat template reads it: the text between spaces."""
    return f" {text} "


def render_observation(view, text: str) -> str:
    """`view.render_observation(text)`, or plain_observation for a task used as it is (toy models, whose
    view is the task itself)."""
    render = getattr(view, "render_observation", None)
    return plain_observation(text) if render is None else render(text)


class PolicyView:
    """Wraps a task; prompts over max_prompt_tokens are an error naming the row, or are dropped when
    the task says skip_invalid. Everything else is the task's."""

    def __init__(
        self,
        task,
        render,
        count_tokens,
        max_prompt_tokens: int,
        max_response_tokens: int,
        render_observation=None,
    ):
        self.task = task
        self._render_observation = render_observation  # text -> the chat template's user turn; None: plain
        self.max_prompt_tokens, self.max_response_tokens = max_prompt_tokens, max_response_tokens
        self._rendered: dict[str, str] = {}
        self._raw: dict[str, str] = {}
        self._keep: dict[str, list[int]] = {}
        self.dropped = 0
        self.longest_prompt_tokens = 0  # of the prompts kept: it sizes the micro-batches (train/micro.py)
        for split in ("train", "eval"):
            prompts = task.prompts(split)
            rendered = [render(p) for p in prompts]
            lengths = count_tokens(rendered) if rendered else []
            keep = []
            for i, (raw, text, n) in enumerate(zip(prompts, rendered, lengths, strict=True)):
                if n <= max_prompt_tokens:
                    keep.append(i)
                    self.longest_prompt_tokens = max(self.longest_prompt_tokens, n)
                    self._rendered[raw], self._raw[text] = text, raw
                elif not getattr(task, "skip_invalid", False):
                    where = task.where(split, i) if hasattr(task, "where") else f"task {split} prompt {i}"
                    limit = f"model.max_prompt_tokens={max_prompt_tokens}"
                    raise ValueError(f"{where}: prompt has {n} tokens; must be <= {limit}")
            if not keep:
                raise ValueError(f"task: no {split} prompt fits model.max_prompt_tokens={max_prompt_tokens}")
            self.dropped += len(prompts) - len(keep)
            self._keep[split] = keep

    def __getattr__(self, name):  # verifiable, has_gold_reward, sft, fingerprint, annotate, ...
        if name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)

    def render_observation(self, text: str) -> str:
        """The text the policy reads after its turn: with a chat template, the user turn that follows an
        assistant turn, ending in the assistant header; without one, plain_observation(text)."""
        if self._render_observation is None:
            return plain_observation(text)
        return self._render_observation(text)

    def raw(self, prompt: str) -> str:
        """The task's own prompt text for a rendered prompt (identity for an unknown text)."""
        return self._raw.get(prompt, prompt)

    def prompts(self, split: str) -> list[str]:
        prompts = self.task.prompts(split)
        return [self._rendered[prompts[i]] for i in self._keep[split]]

    def references(self, split: str) -> list[str] | None:
        refs = self.task.references(split)
        return None if refs is None else [refs[i] for i in self._keep[split]]

    def demonstrations(self) -> list[tuple[str, str]]:
        return [(self._rendered[p], r) for p, r in self.task.demonstrations() if p in self._rendered]

    def preference_pairs(self):
        pairs = self.task.preference_pairs()
        if pairs is None:
            return None
        return [
            dataclasses.replace(p, prompt=self._rendered[p.prompt])
            for p in pairs
            if p.prompt in self._rendered
        ]

    def gold_reward(self, prompts, responses, finished) -> list[float]:
        return self.task.gold_reward([self.raw(p) for p in prompts], responses, finished)
