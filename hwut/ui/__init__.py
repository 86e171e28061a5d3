"""The web page (``/ui``): static HTML, CSS and a small script, served by the API's app."""
