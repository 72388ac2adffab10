"""Files the renderers fill in; each is a real module, linted and type-checked like the rest."""
