"""Multi-turn environments: an episode reads the policy's turn and answers with an observation."""
