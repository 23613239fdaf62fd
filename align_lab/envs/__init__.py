"""Multi-turn environments: the policy acts, the environment answers, the policy acts again."""
