"""golden stage."""
