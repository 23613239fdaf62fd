"""A task as a pretrained policy sees it: prompts rendered in the model's chat template, the model's
token limits. Rewards with their own tokenizer get the raw prompt back with `raw()`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


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
        self.render = render  # raw prompt text -> the text the policy reads (SDPO's teacher prompts too)
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

    def raw(self, prompt: str) -> str:
        """The task's own prompt text for a rendered prompt (identity for an unknown text)."""
        return self._raw.get(prompt, prompt)

    def render_observation(self, text: str) -> str:
        """The text the policy reads after its turn: with a chat template, the user turn that follows
        the assistant's, ending in the assistant header (models/chat.py chat_observation); else the text."""
        return text if self._render_observation is None else self._render_observation(text)

    def prompts(self, split: str) -> list[str]:
        prompts = self.task.prompts(split)
        return [self._rendered[prompts[i]] for i in self._keep[split]]

    def references(self, split: str) -> list[str] | None:
        refs = self.task.references(split)
        return None if refs is None else [refs[i] for i in self._keep[split]]

    def demonstrations(self) -> list[tuple[str, str | list[tuple[str, str]]]]:
        """The task's demonstrations on the kept prompts, rendered; conversations pass through as they are."""
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


def observation_renderer(policy_task, env) -> Callable[[str], str]:
    """text -> what the policy reads after its turn: the env's `observation_template` around the text,
    then the model's wrapping (PolicyView.render_observation: the chat template; none for toy models,
    whose view is the task itself). `env` None: single turn, no observations."""
    template = getattr(env, "observation_template", "{observation}")
    wrap = getattr(policy_task, "render_observation", None) or (lambda text: text)
    return lambda text: wrap(template.format(observation=text))


def conversation_tokens(task, env) -> int:
    """The response tokens a conversation may hold (policy turns and observations): with a multi-turn
    env, max_turns policy turns of task.max_response_tokens and an observation of as many between
    each two; else one response's, task.max_response_tokens (single turn: as before)."""
    turns = env.max_turns if getattr(env, "multi_turn", False) else 1
    return task.max_response_tokens * (2 * turns - 1)
