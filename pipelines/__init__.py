"""Recipes that chain both stages and render the paper's result tables."""
