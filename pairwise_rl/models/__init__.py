"""Model and tokenizer loading: one factory for hub ids, local directories and tiny models from config."""
