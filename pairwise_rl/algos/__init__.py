"""Pure tensor functions: losses, estimators, advantages. No Lightning, no config objects."""
