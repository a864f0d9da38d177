"""llbook IPython extension."""
