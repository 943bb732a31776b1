"""The answer-quality eval: fixed prompts sent the way the service sends them (the
workflow's system prompt and grounding, activities.prompt's assembly, the serving
settings), each reply scored by objective checks, with TTFT and speed, per local model."""
