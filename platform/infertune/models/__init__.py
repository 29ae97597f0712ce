"""Models and data: user inputs, their checks, and the built-in demo models."""
